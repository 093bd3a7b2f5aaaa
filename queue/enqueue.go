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
)

func (q *queueImpl) workSubject(name, id string) string {
	return q.subjPrefix + "jobs." + name + "." + id
}

func (q *queueImpl) deadSubject(name, id string) string {
	return q.subjPrefix + "dead." + name + "." + id
}

// keyedID derives the id of a keyed job: stable for one store, unguessable
// without its secret.
func (q *queueImpl) keyedID(name, key string) string {
	mac := hmac.New(sha256.New, q.secret)
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(key))
	return hex.EncodeToString(mac.Sum(nil)[:16])
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
	if q.isClosed() {
		return "", false, ErrClosed
	}
	id := randomID()
	if m.Key != "" {
		id = q.keyedID(name, m.Key)
	}
	msg := &nats.Msg{Subject: q.workSubject(name, id), Data: m.Data, Header: nats.Header{}}
	putUserHeader(msg.Header, m.Header)
	msg.Header.Set(hdrEnqueued, time.Now().UTC().Format(time.RFC3339Nano))
	var opts []jetstream.PublishOpt
	if m.Key != "" {
		msg.Header.Set(hdrKey, m.Key)
		opts = append(opts, jetstream.WithMsgID(name+":"+m.Key))
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	ack, err := q.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return "", false, q.publishError(err)
	}
	return id, ack.Duplicate, nil
}

// publishError maps a failed publish to ErrFull, ErrUnavailable or
// ErrClosed. In every case the store did not acknowledge the message.
func (q *queueImpl) publishError(err error) error {
	if isFull(err) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	if errors.Is(err, nats.ErrConnectionClosed) && q.isClosed() {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
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
