package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// openEmbedded opens a Queue on an embedded server in a temp dir, closed
// at the end of the test.
func openEmbedded(t *testing.T, mod func(*Config)) *Queue {
	t.Helper()
	cfg := Config{Dir: t.TempDir(), Prefix: "T"}
	if mod != nil {
		mod(&cfg)
	}
	q, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// startServer runs a NATS server with JetStream listening on 127.0.0.1.
func startServer(t *testing.T, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true, JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stopWorker(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func fast(p Policy) Policy {
	if p.Backoff.Initial == 0 {
		p.Backoff = Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Jitter: "none"}
	}
	return p
}

// recorder is a handler that records the jobs it sees and answers with
// the results of a script (Delivered when it runs out).
type recorder struct {
	mu     sync.Mutex
	seen   []Job
	script func(j *Job) Result
	got    chan Job
}

func newRecorder(script func(j *Job) Result) *recorder {
	return &recorder{script: script, got: make(chan Job, 1000)}
}

func (r *recorder) handle(_ context.Context, j *Job) Result {
	r.mu.Lock()
	r.seen = append(r.seen, *j)
	r.mu.Unlock()
	r.got <- *j
	if r.script != nil {
		return r.script(j)
	}
	return Result{Outcome: Delivered, Status: 200}
}

func (r *recorder) next(t *testing.T) Job {
	t.Helper()
	select {
	case j := <-r.got:
		return j
	case <-time.After(10 * time.Second):
		t.Fatal("no job delivered")
		return Job{}
	}
}

func waitState(t *testing.T, q *Queue, id string, want State) Status {
	t.Helper()
	var st Status
	eventually(t, fmt.Sprintf("state %s of %s", want, id), func() bool {
		var err error
		st, err = q.Status(t.Context(), id)
		return err == nil && st.State == want
	})
	return st
}

func TestEnqueueDeliverStatus(t *testing.T) {
	q := openEmbedded(t, nil)
	if !q.Embedded() {
		t.Fatal("not embedded")
	}
	id, dup, err := q.Enqueue(t.Context(), "orders", Message{Header: http.Header{"Content-Type": {"text/plain"}}, Data: []byte("hello")})
	if err != nil || dup || len(id) != 32 {
		t.Fatalf("enqueue = %q %v %v", id, dup, err)
	}
	st, err := q.Status(t.Context(), id)
	if err != nil || st.State != StateQueued || st.Queue != "orders" || st.Enqueued.IsZero() {
		t.Fatalf("status before delivery = %+v, %v", st, err)
	}
	rec := newRecorder(nil)
	w, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	j := rec.next(t)
	if j.ID != id || string(j.Data) != "hello" || j.Attempt != 1 || j.Queue != "orders" ||
		j.Header.Get("Content-Type") != "text/plain" || j.Enqueued.IsZero() {
		t.Fatalf("job = %+v", j)
	}
	st = waitState(t, q, id, StateDelivered)
	if st.Attempts != 1 || st.LastStatus != 200 {
		t.Fatalf("status = %+v", st)
	}
}

func TestStatusUnknown(t *testing.T) {
	q := openEmbedded(t, nil)
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "nope", "*"} {
		if _, err := q.Status(t.Context(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Status(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := q.DeadLetterByID(t.Context(), "0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeadLetterByID = %v", err)
	}
}

func TestDedupeByKey(t *testing.T) {
	q := openEmbedded(t, nil)
	id1, dup1, err := q.Enqueue(t.Context(), "orders", Message{Key: "k1", Data: []byte("a")})
	if err != nil || dup1 {
		t.Fatal(id1, dup1, err)
	}
	id2, dup2, err := q.Enqueue(t.Context(), "orders", Message{Key: "k1", Data: []byte("a")})
	if err != nil || !dup2 || id2 != id1 {
		t.Fatalf("second enqueue = %q %v %v, want %q duplicate", id2, dup2, err, id1)
	}
	// The same key on another queue is another job.
	id3, dup3, err := q.Enqueue(t.Context(), "other", Message{Key: "k1"})
	if err != nil || dup3 || id3 == id1 {
		t.Fatalf("other queue = %q %v %v", id3, dup3, err)
	}
	rec := newRecorder(nil)
	w, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j := rec.next(t)
	if j.ID != id1 || j.Key != "k1" || string(j.Data) != "a" {
		t.Fatalf("job = %+v", j)
	}
	waitState(t, q, id1, StateDelivered)
	stopWorker(t, w)
	if n := len(rec.seen); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

func TestFailedRetriedThenDead(t *testing.T) {
	q := openEmbedded(t, nil)
	rec := newRecorder(func(j *Job) Result {
		return Result{Outcome: Failed, Status: 503, Reason: fmt.Sprintf("upstream_error_%d", j.Attempt)}
	})
	var mu sync.Mutex
	var results []string
	w, err := q.Consume("orders", fast(Policy{MaxAttempts: 3}), rec.handle, WorkerOptions{
		OnResult: func(name string, r Result, dead bool) {
			mu.Lock()
			results = append(results, fmt.Sprintf("%s %s %v", name, r.Outcome, dead))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, err := q.Enqueue(t.Context(), "orders", Message{Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		if j := rec.next(t); j.Attempt != want {
			t.Fatalf("attempt %d, want %d", j.Attempt, want)
		}
	}
	st := waitState(t, q, id, StateDead)
	if st.Attempts != 3 || st.LastStatus != 503 || st.LastReason != "upstream_error_3" {
		t.Fatalf("status = %+v", st)
	}
	d, err := q.DeadLetterByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != id || d.Queue != "orders" || d.Attempts != 3 || d.LastReason != "upstream_error_3" ||
		d.LastStatus != 503 || string(d.Data) != "x" || d.Died.IsZero() || d.Enqueued.IsZero() {
		t.Fatalf("dead letter = %+v", d)
	}
	eventually(t, "results", func() bool { mu.Lock(); defer mu.Unlock(); return len(results) == 3 })
	mu.Lock()
	defer mu.Unlock()
	want := []string{"orders failed false", "orders failed false", "orders failed true"}
	if fmt.Sprint(results) != fmt.Sprint(want) {
		t.Fatalf("results = %q, want %q", results, want)
	}
	s, err := q.Stats(t.Context(), "orders")
	if err != nil || s.Pending != 0 || s.DeadLetters != 1 {
		t.Fatalf("stats = %+v %v", s, err)
	}
}

func TestRejectedDeadAtOnce(t *testing.T) {
	q := openEmbedded(t, nil)
	rec := newRecorder(func(*Job) Result { return Result{Outcome: Rejected, Status: 400, Reason: "bad_request"} })
	w, err := q.Consume("orders", fast(Policy{MaxAttempts: 5}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, _ := q.Enqueue(t.Context(), "orders", Message{Data: []byte("x")})
	rec.next(t)
	st := waitState(t, q, id, StateDead)
	if st.Attempts != 1 || st.LastStatus != 400 {
		t.Fatalf("status = %+v", st)
	}
	if _, err := q.DeadLetterByID(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

func TestPausedDoesNotCount(t *testing.T) {
	q := openEmbedded(t, nil)
	var mu sync.Mutex
	calls := 0
	rec := newRecorder(func(*Job) Result {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 3 {
			return Result{Outcome: Paused, Reason: "breaker_open", RetryAfter: time.Millisecond}
		}
		return Result{Outcome: Delivered, Status: 201}
	})
	w, err := q.Consume("orders", fast(Policy{MaxAttempts: 2}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, _ := q.Enqueue(t.Context(), "orders", Message{})
	for range 4 {
		if j := rec.next(t); j.Attempt != 1 {
			t.Fatalf("attempt = %d, want 1 (paused deliveries do not count)", j.Attempt)
		}
	}
	st := waitState(t, q, id, StateDelivered)
	if st.Attempts != 1 || st.LastStatus != 201 {
		t.Fatalf("status = %+v", st)
	}
}

func TestGatePausesFetching(t *testing.T) {
	q := openEmbedded(t, nil)
	var mu sync.Mutex
	closed := true
	asked := make(chan struct{}, 100)
	gate := func() time.Duration {
		select {
		case asked <- struct{}{}:
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return time.Millisecond
		}
		return 0
	}
	rec := newRecorder(nil)
	w, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{Gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, _ := q.Enqueue(t.Context(), "orders", Message{})
	for range 5 { // the gate is consulted again and again, and nothing is fetched
		<-asked
	}
	if len(rec.got) != 0 {
		t.Fatal("a job was delivered while the gate was closed")
	}
	if st, err := q.Status(t.Context(), id); err != nil || st.State != StateQueued {
		t.Fatalf("status = %+v %v", st, err)
	}
	mu.Lock()
	closed = false
	mu.Unlock()
	if j := rec.next(t); j.ID != id || j.Attempt != 1 {
		t.Fatalf("job = %+v", j)
	}
}

func TestOrderedHoldsOrderThroughFailure(t *testing.T) {
	q := openEmbedded(t, nil)
	var mu sync.Mutex
	failed := 0
	var order []string
	rec := newRecorder(func(j *Job) Result {
		mu.Lock()
		defer mu.Unlock()
		if string(j.Data) == "3" && failed < 2 {
			failed++
			return Result{Outcome: Failed, Reason: "upstream_error"}
		}
		order = append(order, string(j.Data))
		return Result{Outcome: Delivered}
	})
	for i := range 6 {
		if _, _, err := q.Enqueue(t.Context(), "seq", Message{Data: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := q.Consume("seq", fast(Policy{Ordered: true, Concurrency: 4}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	eventually(t, "all delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 6 })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[0 1 2 3 4 5]" {
		t.Fatalf("order = %v", order)
	}
}

func TestReplayPurgePaging(t *testing.T) {
	q := openEmbedded(t, nil)
	var mu sync.Mutex
	accept := false
	rec := newRecorder(func(*Job) Result {
		mu.Lock()
		defer mu.Unlock()
		if accept {
			return Result{Outcome: Delivered, Status: 200}
		}
		return Result{Outcome: Rejected, Status: 422}
	})
	w, err := q.Consume("a", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	w2, err := q.Consume("b", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w2)
	var ids []string
	for i := range 5 {
		id, _, err := q.Enqueue(t.Context(), "a", Message{Key: fmt.Sprint(i), Data: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, q, id, StateDead) // one at a time: the dead stream keeps this order
		ids = append(ids, id)
	}
	idb, _, _ := q.Enqueue(t.Context(), "b", Message{})
	waitState(t, q, idb, StateDead)

	// Paging through queue a, two at a time.
	var got []string
	var after uint64
	for pages := 0; ; pages++ {
		page, next, err := q.DeadLetters(t.Context(), "a", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			got = append(got, d.ID)
		}
		if next == 0 {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		after = next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("paged %v, want %v", got, ids)
	}
	all, _, err := q.DeadLetters(t.Context(), "", 0, 100)
	if err != nil || len(all) != 6 {
		t.Fatalf("all dead letters = %d %v", len(all), err)
	}

	// Replay one: delivered once the handler accepts it; attempts restart.
	mu.Lock()
	accept = true
	mu.Unlock()
	if err := q.Replay(t.Context(), ids[0]); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, q, ids[0], StateDelivered)
	if st.Attempts != 1 {
		t.Fatalf("replayed status = %+v", st)
	}
	if _, err := q.DeadLetterByID(t.Context(), ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replayed dead letter still there: %v", err)
	}
	if err := q.Replay(t.Context(), ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second replay = %v", err)
	}
	// Purge one, replay the rest of a, purge all of b.
	if err := q.Purge(t.Context(), ids[1]); err != nil {
		t.Fatal(err)
	}
	if n, err := q.ReplayAll(t.Context(), "a"); err != nil || n != 3 {
		t.Fatalf("ReplayAll = %d %v", n, err)
	}
	for _, id := range ids[2:] {
		waitState(t, q, id, StateDelivered)
	}
	if n, err := q.PurgeAll(t.Context(), ""); err != nil || n != 1 {
		t.Fatalf("PurgeAll = %d %v", n, err)
	}
	if page, _, err := q.DeadLetters(t.Context(), "", 0, 10); err != nil || len(page) != 0 {
		t.Fatalf("after purge: %d %v", len(page), err)
	}
}

func TestStats(t *testing.T) {
	q := openEmbedded(t, nil)
	s, err := q.Stats(t.Context(), "orders")
	if err != nil || s != (Stats{}) {
		t.Fatalf("empty stats = %+v %v", s, err)
	}
	for range 3 {
		if _, _, err := q.Enqueue(t.Context(), "orders", Message{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err = q.Stats(t.Context(), "orders")
	if err != nil || s.Pending != 3 || s.InFlight != 0 || s.OldestPendingAge <= 0 {
		t.Fatalf("stats before any worker = %+v %v", s, err)
	}
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	w, err := q.Consume("orders", fast(Policy{Concurrency: 1}), func(ctx context.Context, j *Job) Result {
		started <- struct{}{}
		<-release
		return Result{Outcome: Delivered}
	}, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	<-started
	eventually(t, "one in flight", func() bool {
		s, err = q.Stats(t.Context(), "orders")
		return err == nil && s.Pending == 3 && s.InFlight == 1
	})
	close(release)
	eventually(t, "drained", func() bool {
		s, err = q.Stats(t.Context(), "orders")
		return err == nil && s.Pending == 0 && s.InFlight == 0 && s.OldestPendingAge == 0
	})
}

func TestReopenKeepsQueuedJobs(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		id, _, err := q.Enqueue(t.Context(), "orders", Message{Data: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	if _, _, err := q.Enqueue(t.Context(), "orders", Message{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close = %v", err)
	}
	q = openEmbedded(t, func(c *Config) { c.Dir = dir; c.Prefix = "" })
	rec := newRecorder(nil)
	w, err := q.Consume("orders", fast(Policy{Ordered: true}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	for i, id := range ids {
		if j := rec.next(t); j.ID != id || j.Data[0] != byte(i) {
			t.Fatalf("job %d = %+v", i, j)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	q := openEmbedded(t, nil)
	for _, name := range []string{"", "a.b", "a*", "a>", "a b", "é"} {
		if _, _, err := q.Enqueue(t.Context(), name, Message{}); err == nil {
			t.Errorf("Enqueue(%q) accepted", name)
		}
		if _, err := q.Consume(name, Policy{}, func(context.Context, *Job) Result { return Result{} }, WorkerOptions{}); err == nil {
			t.Errorf("Consume(%q) accepted", name)
		}
	}
}
