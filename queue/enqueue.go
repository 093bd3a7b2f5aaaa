package queue

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of stored messages. A job's own headers are stored under
// hdrUser+name so that they cannot clash with these or with NATS's.
const (
	hdrUser       = "Job-"
	hdrKey        = "Spillway-Key"
	hdrEnqueued   = "Spillway-Enqueued"
	hdrAttempts   = "Spillway-Attempts"
	hdrLastStatus = "Spillway-Last-Status"
	hdrLastReason = "Spillway-Last-Reason"
	hdrDied       = "Spillway-Died"
	// hdrDigest is the digest of a keyed job's Fingerprint, which a
	// duplicate is compared with.
	hdrDigest = "Spillway-Digest"
)

func (q *queueImpl) workSubject(name, id string) string {
	return q.subjPrefix + "jobs." + name + "." + id
}

func (q *queueImpl) deadSubject(name, id string) string {
	return q.subjPrefix + "dead." + name + "." + id
}

// keyedID derives the id of a keyed job from its queue, key and scope:
// stable for one store, unguessable without its secret. It is also the
// job's Nats-Msg-Id, so that what the store remembers for the dedupe
// window has a fixed size whatever the key. The encoding is unambiguous:
// a name holds no NUL, a valid key neither NUL nor 0x01, and an unscoped
// key derives the id it did before scopes existed.
func (q *queueImpl) keyedID(name, scope, key string) string {
	mac := hmac.New(sha256.New, q.secret)
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(key))
	if scope != "" {
		mac.Write([]byte{1})
		mac.Write([]byte(scope))
	}
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// digest is what a keyed job stores of m.Fingerprint (or, without one, of
// its header and data): 16 bytes of SHA-256, in hex.
func digest(m *Message) string {
	h := sha256.New()
	if m.Fingerprint != nil {
		h.Write(m.Fingerprint)
	} else {
		names := make([]string, 0, len(m.Header))
		for k := range m.Header {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range m.Header[k] {
				fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(v), v)
			}
		}
		h.Write([]byte{0})
		h.Write(m.Data)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape of a job id, 32 lowercase
// hexadecimal digits (so that it cannot inject subject tokens or
// wildcards).
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (q *queueImpl) enqueue(ctx context.Context, name string, m Message) (string, bool, error) {
	if !validName(name) {
		return "", false, fmt.Errorf("queue: invalid queue name %q: use letters, digits, '-' and '_'", name)
	}
	if m.Key != "" && !ValidKey(m.Key) {
		return "", false, fmt.Errorf("%w: %d bytes: use 1 to %d bytes of visible ASCII", ErrInvalidKey, len(m.Key), MaxKeyLen)
	}
	if q.isClosed() {
		return "", false, ErrClosed
	}
	id, sum := randomID(), ""
	if m.Key != "" {
		id, sum = q.keyedID(name, m.Scope, m.Key), digest(&m)
	}
	msg := &nats.Msg{Subject: q.workSubject(name, id), Data: m.Data, Header: nats.Header{}}
	putUserHeader(msg.Header, m.Header)
	msg.Header.Set(hdrEnqueued, time.Now().UTC().Format(time.RFC3339Nano))
	var opts []jetstream.PublishOpt
	if m.Key != "" {
		msg.Header.Set(hdrKey, m.Key)
		msg.Header.Set(hdrDigest, sum)
		opts = append(opts, jetstream.WithMsgID(id))
	}
	pctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	ack, err := q.js.PublishMsg(pctx, msg, opts...)
	if err != nil {
		return "", false, q.publishError(err)
	}
	if ack.Duplicate {
		// Only now, and only for a duplicate: is it the same message?
		if err := q.sameMessage(ctx, name, id, sum); err != nil {
			return "", false, err
		}
	}
	return id, ack.Duplicate, nil
}

// publishError maps a failed publish to ErrFull or ErrUnavailable (the
// store refused the message or never got it), ErrUncertain (it was sent
// and no answer came: the store may have kept it), or ErrClosed.
func (q *queueImpl) publishError(err error) error {
	switch {
	case isFull(err):
		return fmt.Errorf("%w: %w", ErrFull, err)
	case errors.Is(err, nats.ErrConnectionClosed) && q.isClosed():
		// Closed under the publish, before or after it was sent.
		return fmt.Errorf("%w: %w: %w", ErrClosed, ErrUncertain, err)
	case uncertain(err):
		return fmt.Errorf("%w: %w", ErrUncertain, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// uncertain reports whether a publish failed after the message may have
// left: its context ended while the acknowledgement was awaited (or
// before it was sent, which the error does not tell apart), or the
// connection was lost under it. A refusal (no responders, an API error,
// not connected) is not uncertain: nothing was stored.
func uncertain(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrDisconnected)
}

// isFull recognises the JetStream answers that mean "no room": the
// account's or server's storage or memory limit, a stream limit with
// discard new, or a message larger than the maximum.
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10023, // insufficient resources
			10028, // insufficient memory resources
			10047, // insufficient storage resources
			10054: // message size exceeds maximum
			return true
		}
		// Any other code (10077, store failed, among them): look at why.
		return fullText(apiErr.Description)
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	return fullText(err.Error())
}

func fullText(s string) bool {
	s = strings.ToLower(s)
	for _, w := range []string{"maximum bytes", "maximum messages", "insufficient", "resources exceeded", "exceeds maximum"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func putUserHeader(dst nats.Header, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			dst.Add(hdrUser+k, v)
		}
	}
}

func userHeader(h nats.Header) http.Header {
	out := http.Header{}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, hdrUser); ok {
			out[http.CanonicalHeaderKey(name)] = append([]string(nil), vs...)
		}
	}
	return out
}

func headerTime(h nats.Header, k string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, h.Get(k))
	return t
}
