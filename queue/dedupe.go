package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// sameMessage checks that the stored job id, a duplicate of a message
// with digest sum, was stored for the same fingerprint. The job is looked
// for where it is at each step of its life, in an order that cannot miss
// it: the work stream (until it is acknowledged, after its final status
// is written), the status bucket, and the dead letters. A job found
// nowhere (its status expired within the dedupe window) cannot be
// compared and is taken for another message. A lookup that fails leaves
// the answer unknown: ErrUncertain, so that the caller retries.
func (q *queueImpl) sameMessage(ctx context.Context, name, id, sum string) error {
	stored, err := q.storedDigest(ctx, name, id)
	switch {
	case err != nil:
		return fmt.Errorf("%w: job %s was stored before; comparing it: %v", ErrUncertain, id, err)
	case stored != sum:
		return fmt.Errorf("%w: in queue %s", ErrKeyReused, name)
	}
	return nil
}

// storedDigest returns the digest of job id of queue name, "" when the
// job is found nowhere. It asks the streams' leaders: a replica answering
// a direct get may not have the job yet, though the leader just said it
// has it.
func (q *queueImpl) storedDigest(ctx context.Context, name, id string) (string, error) {
	h, _, err := q.leaderLast(ctx, q.workName, q.workSubject(name, id))
	if err == nil {
		return h.Get(hdrDigest), nil
	}
	if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	_, data, err := q.leaderLast(ctx, "KV_"+q.bucket, "$KV."+q.bucket+"."+id)
	switch {
	case err == nil && len(data) > 0: // else a delete or expiry marker
		var r record
		if err := json.Unmarshal(data, &r); err != nil {
			return "", fmt.Errorf("status of %s: %w", id, err)
		}
		return r.Digest, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return "", err
	}
	h, _, err = q.leaderLast(ctx, q.deadName, q.deadSubject(name, id))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return h.Get(hdrDigest), nil
}

// msgGetResponse is JetStream's answer to a STREAM.MSG.GET request.
type msgGetResponse struct {
	Message *struct {
		Header []byte `json:"hdrs"`
		Data   []byte `json:"data"`
	} `json:"message"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// leaderLast returns the headers and data of the last message on subject
// in stream, read from the stream's leader (the STREAM.MSG.GET API, which
// only the leader answers, unlike a direct get); ErrNotFound if there is
// none.
func (q *queueImpl) leaderLast(ctx context.Context, stream, subject string) (nats.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
	msg, err := q.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: get %s: %w", ErrUnavailable, subject, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, nil, fmt.Errorf("%w: get %s: %w", ErrUnavailable, subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == 10037: // no message found
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, subject)
	case resp.Error != nil:
		return nil, nil, fmt.Errorf("%w: get %s: %s", ErrUnavailable, subject, resp.Error.Description)
	case resp.Message == nil:
		return nil, nil, fmt.Errorf("%w: get %s: an answer without a message", ErrUnavailable, subject)
	}
	h := nats.Header{}
	if len(resp.Message.Header) > 0 {
		if h, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, nil, fmt.Errorf("%w: get %s: %w", ErrUnavailable, subject, err)
		}
	}
	return h, resp.Message.Data, nil
}
