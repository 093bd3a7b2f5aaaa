package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spillway-dev/spillway/internal/natstest"
	"github.com/spillway-dev/spillway/internal/stallproxy"
	"github.com/spillway-dev/spillway/queue"
)

// refused checks a local answer: the status, its Spillway-Reason, the
// reason in the JSON body, and no job id in it.
func refused(t *testing.T, what string, resp *http.Response, body string, status int, reason string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Spillway-Reason") != reason ||
		!strings.Contains(body, `"reason":"`+reason+`"`) || strings.Contains(body, `"id"`) || resp.Header.Get("Location") != "" {
		t.Errorf("%s: %d %q %s, want %d %s without a job id", what, resp.StatusCode, resp.Header.Get("Spillway-Reason"), body, status, reason)
	}
}

// TestAsyncIdempotencyKeyBounded: an Idempotency-Key of 30 KB (accepted and
// kept in memory for the dedupe window before), over 256 bytes, not
// visible ASCII, or sent twice gets 400 idempotency_key_invalid and
// nothing is stored; 256 bytes is accepted.
func TestAsyncIdempotencyKeyBounded(t *testing.T) {
	u := newRecording(t)
	q := openQueue(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), q)
	for _, key := range []string{strings.Repeat("k", 30<<10), strings.Repeat("k", queue.MaxKeyLen+1), "two words", "caf\u00e9"} {
		resp, body := h.do(t, "POST", "/orders", map[string]string{"Idempotency-Key": key}, "x")
		refused(t, fmt.Sprintf("key of %d bytes", len(key)), resp, body, http.StatusBadRequest, queue.ReasonKeyInvalid)
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/orders", strings.NewReader("x"))
	req.Header.Add("Idempotency-Key", "a")
	req.Header.Add("Idempotency-Key", "b")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Spillway-Reason") != queue.ReasonKeyInvalid {
		t.Errorf("two keys: %d %q", resp.StatusCode, resp.Header.Get("Spillway-Reason"))
	}
	if st, err := q.Stats(t.Context(), "orders"); err != nil || st.Pending != 0 {
		t.Fatalf("stats %+v %v: a refused key stored a job", st, err)
	}
	a := h.post(t, "/orders", map[string]string{"Idempotency-Key": strings.Repeat("k", queue.MaxKeyLen)}, "x")
	h.waitState(t, a.ID, queue.StateDelivered)
	if n := u.count(); n != 1 {
		t.Fatalf("%d deliveries, want the one accepted job", n)
	}
}

// TestAsyncIdempotencyKeyReused: a request that reuses another's key with
// another body, query or stored header gets 409 idempotency_key_reused,
// without the stored job's id, and its body is not stored; the same
// request again (tracing headers and Date may differ) gets 202 with the
// same id and "duplicate":true, before and after delivery.
func TestAsyncIdempotencyKeyReused(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueue(t))
	hdr := func(extra ...string) map[string]string {
		m := map[string]string{"Idempotency-Key": "order-7", "X-Tenant": "acme", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	first := h.post(t, "/orders", hdr(), "seven apples")
	check := func(stage string) {
		t.Helper()
		again := h.post(t, "/orders", hdr("Traceparent", "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01", "Date", time.Now().Format(http.TimeFormat)), "seven apples")
		if again.ID != first.ID || !again.Duplicate {
			t.Errorf("%s, the same request: %+v, want id %s duplicate", stage, again, first.ID)
		}
		for what, req := range map[string]struct {
			path string
			hdr  map[string]string
			body string
		}{
			"another body":   {"/orders", hdr(), "seven pears"},
			"another query":  {"/orders?rush=1", hdr(), "seven apples"},
			"another header": {"/orders", hdr("X-Tenant", "evil"), "seven apples"},
			"another path":   {"/orders/x", hdr(), "seven apples"},
		} {
			resp, body := h.do(t, "POST", req.path, req.hdr, req.body)
			refused(t, stage+", "+what, resp, body, http.StatusConflict, queue.ReasonKeyReused)
			if strings.Contains(body, first.ID) {
				t.Errorf("%s, %s: the 409 reveals the stored job's id: %s", stage, what, body)
			}
		}
	}
	check("queued")
	h.waitState(t, first.ID, queue.StateDelivered)
	check("delivered")
	reqs := u.all()
	if len(reqs) != 1 || reqs[0].body != "seven apples" {
		t.Fatalf("deliveries %+v, want the first request once", reqs)
	}
}

// TestAsyncKeyScope: with async.key_scope: header:X-Api-Key, two clients
// using the same Idempotency-Key get jobs of their own, and a keyed
// request without the header gets 400 idempotency_key_unscoped.
func TestAsyncKeyScope(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ", key_scope: header:X-Api-Key"), openQueue(t))
	alice := h.post(t, "/orders", map[string]string{"Idempotency-Key": "order-1", "X-Api-Key": "alice"}, "alice's order")
	bob := h.post(t, "/orders", map[string]string{"Idempotency-Key": "order-1", "X-Api-Key": "bob"}, "bob's order")
	if bob.ID == alice.ID || bob.Duplicate {
		t.Fatalf("bob guessing alice's key: %+v (alice %+v), want a job of his own", bob, alice)
	}
	again := h.post(t, "/orders", map[string]string{"Idempotency-Key": "order-1", "X-Api-Key": "alice"}, "alice's order")
	if again.ID != alice.ID || !again.Duplicate {
		t.Fatalf("alice again: %+v, want %s duplicate", again, alice.ID)
	}
	resp, body := h.do(t, "POST", "/orders", map[string]string{"Idempotency-Key": "order-1"}, "anonymous")
	refused(t, "a keyed request without X-Api-Key", resp, body, http.StatusBadRequest, "idempotency_key_unscoped")
	h.post(t, "/orders", nil, "unkeyed, unscoped: accepted")
	eventually(t, "three deliveries", func() bool { return u.count() == 3 })
}

// TestAsyncUnconfirmedAnswers504: when the store gets the job but its
// acknowledgement does not come back within queue.timeout (answers held,
// as from a paused NATS node), the answer is 504 queue_timeout telling
// that the request may have been stored — not 503 queue_unavailable "not
// stored", which it was. A retry with the same key gets the stored job.
func TestAsyncUnconfirmedAnswers504(t *testing.T) {
	s := natstest.Start(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30})
	p, err := stallproxy.New(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	u := newRecording(t)
	q := openQueueWith(t, queue.Config{Servers: []string{"nats://" + p.Addr()}, Timeout: 300 * time.Millisecond})
	h := startAsync(t, asyncConfig(t, u, "", ""), q)
	key := map[string]string{"Idempotency-Key": "held-1"}

	p.Hold()
	resp, body := h.do(t, "POST", "/orders", key, "held")
	p.Resume()
	if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("Spillway-Reason") != queue.ReasonTimeout ||
		resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "may have been stored") || !strings.Contains(body, "Idempotency-Key") {
		t.Fatalf("unacknowledged publish: %d %q %s, want 504 queue_timeout", resp.StatusCode, resp.Header.Get("Spillway-Reason"), body)
	}
	again := h.post(t, "/orders", key, "held")
	if !again.Duplicate {
		t.Fatalf("retry with the same key: %+v, want the job the 504 stored", again)
	}
	h.waitState(t, again.ID, queue.StateDelivered)
	if n := u.count(); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

// TestAsyncRejectedJobsDoNotFillTheStore: 40 posts of 1 MB that the
// upstream rejects (422) into a 32 MiB store. The dead letters keep their
// share (the oldest dropped, counted by
// spillway_queue_dead_letters_dropped_total), every post is accepted, and
// a good one still is after them — before, the dead letters filled the
// store and every async route answered queue_full.
func TestAsyncRejectedJobsDoNotFillTheStore(t *testing.T) {
	u := newRecording(t)
	u.status.Store(http.StatusUnprocessableEntity)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueueWith(t, queue.Config{Dir: t.TempDir(), MaxDisk: 32 << 20}))
	const posts = 40
	body := strings.Repeat("x", 1_000_000)
	for i := range posts {
		resp, b := h.do(t, "POST", "/orders", nil, body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %d of 1 MB: %d %q %s", i, resp.StatusCode, resp.Header.Get("Spillway-Reason"), b)
		}
		var a accepted
		if err := json.Unmarshal([]byte(b), &a); err != nil {
			t.Fatal(err)
		}
		h.waitState(t, a.ID, queue.StateDead)
	}
	u.status.Store(0)
	h.waitState(t, h.post(t, "/orders", nil, "good").ID, queue.StateDelivered)
	var kept float64
	eventually(t, "the dead-letter gauge", func() bool {
		kept = metricValue(t, h, "spillway_queue_dead_letters", "route", "orders")
		return kept > 0 && kept <= 3
	})
	if got := metricValue(t, h, "spillway_queue_dead_letters_dropped_total", "route", "orders"); got != posts-kept {
		t.Errorf("spillway_queue_dead_letters_dropped_total = %v, want %v (%d dead, %v kept)", got, posts-kept, posts, kept)
	}
}
