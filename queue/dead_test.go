package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// dropCounter counts the dead letters a worker reports dropped.
type dropCounter struct {
	mu  sync.Mutex
	ids []string
}

func (d *dropCounter) dropped(_, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = append(d.ids, id)
}

func (d *dropCounter) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ids...)
}

// rejectBad is a handler that rejects the jobs whose data starts with 'b'.
func rejectBad(j *Job) Result {
	if len(j.Data) > 0 && j.Data[0] == 'b' {
		return Result{Outcome: Rejected, Status: 422, Reason: "upstream_rejected"}
	}
	return Result{Outcome: Delivered, Status: 200}
}

// TestDeadLettersDoNotBlockIntake: a 32 MiB embedded store gets 40 jobs of
// 1 MB that the handler rejects, one after the other. The dead-letter
// stream keeps only its share (10 %: three of them), the oldest dropped
// and reported; every job is accepted and a good one still is after them
// (before the streams had their own shares, the dead letters filled the
// store and intake answered queue_full).
func TestDeadLettersDoNotBlockIntake(t *testing.T) {
	q := openEmbedded(t, func(c *Config) { c.MaxDisk = 32 << 20 })
	drops := &dropCounter{}
	rec := newRecorder(rejectBad)
	w, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{OnDeadLetterDropped: drops.dropped})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	const jobs = 40
	bad := make([]byte, 1_000_000)
	bad[0] = 'b'
	var ids []string
	for i := range jobs {
		id, _, err := q.Enqueue(t.Context(), "orders", Message{Data: bad})
		if err != nil {
			t.Fatalf("job %d of 1 MB refused: %v (reason %s)", i, err, ReasonOf(err))
		}
		waitState(t, q, id, StateDead)
		ids = append(ids, id)
	}
	good, _, err := q.Enqueue(t.Context(), "orders", Message{Data: []byte("good")})
	if err != nil {
		t.Fatalf("a good job after %d dead letters of 1 MB: %v (reason %s)", jobs, err, ReasonOf(err))
	}
	waitState(t, q, good, StateDelivered)

	page, _, err := q.DeadLetters(t.Context(), "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	kept := len(page)
	if kept == 0 || kept > 3 {
		t.Fatalf("%d dead letters kept, want 1 to 3 (10 %% of 32 MiB)", kept)
	}
	for i, d := range page {
		if want := ids[jobs-kept+i]; d.ID != want {
			t.Errorf("dead letter %d is %s, want %s: the newest are kept", i, d.ID, want)
		}
	}
	dropped := drops.all()
	if len(dropped) != jobs-kept {
		t.Fatalf("%d drops reported, want %d", len(dropped), jobs-kept)
	}
	for i, id := range dropped {
		if id != ids[i] {
			t.Fatalf("drop %d is %s, want %s: the oldest go first", i, id, ids[i])
		}
	}
	// A dropped letter's job still says dead.
	if st, err := q.Status(t.Context(), ids[0]); err != nil || st.State != StateDead {
		t.Errorf("status of a dropped dead letter: %+v %v", st, err)
	}
	t.Logf("%d jobs of 1 MB dead: %d dead letters kept, %d dropped", jobs, kept, len(dropped))
}

// TestDeadLettersBoundedByCount: with DeadLetterMaxMessages 2, five
// rejected jobs leave the two newest dead letters; a dead letter larger
// than DeadLetterMaxBytes is not kept at all, and the others stay.
func TestDeadLettersBoundedByCount(t *testing.T) {
	q := openEmbedded(t, func(c *Config) {
		c.MaxDisk, c.DeadLetterMaxBytes, c.DeadLetterMaxMessages = 32<<20, 1<<20, 2
	})
	drops := &dropCounter{}
	w, err := q.Consume("orders", fast(Policy{}), newRecorder(rejectBad).handle, WorkerOptions{OnDeadLetterDropped: drops.dropped})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	var ids []string
	for range 5 {
		id, _, err := q.Enqueue(t.Context(), "orders", Message{Data: []byte("bad")})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, q, id, StateDead)
		ids = append(ids, id)
	}
	huge := make([]byte, 2<<20)
	huge[0] = 'b'
	big, _, err := q.Enqueue(t.Context(), "orders", Message{Data: huge})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, q, big, StateDead)
	page, _, err := q.DeadLetters(t.Context(), "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != ids[3] || page[1].ID != ids[4] {
		t.Fatalf("dead letters %v, want the two newest small ones %v", page, ids[3:])
	}
	want := append(append([]string(nil), ids[:3]...), big)
	if got := drops.all(); len(got) != len(want) {
		t.Fatalf("drops %v, want %v", got, want)
	}
	if _, err := q.DeadLetterByID(t.Context(), big); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the dead letter over the bound: %v, want not kept", err)
	}
	if st, err := q.Stats(t.Context(), "orders"); err != nil || st.Pending != 0 {
		t.Fatalf("stats = %+v %v: the job over the bound is still pending", st, err)
	}
}

// TestDeadLetterShareValidated: a dead-letter bound over half of an
// embedded MaxDisk is refused at Open.
func TestDeadLetterShareValidated(t *testing.T) {
	_, err := Open(t.Context(), Config{Dir: t.TempDir(), MaxDisk: 32 << 20, DeadLetterMaxBytes: 17 << 20})
	if err == nil {
		t.Fatal("Open accepted dead letters taking more than half of the store")
	}
}

// TestExternalTooSmallForDeadLetters: on an external server whose storage
// cannot hold the default dead-letter bound (1 GiB), Open fails at once,
// naming the bound, instead of retrying until its context ends.
func TestExternalTooSmallForDeadLetters(t *testing.T) {
	s := startExternal(t, server.Options{JetStreamMaxStore: 256 << 20})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Open(ctx, Config{Servers: []string{s.ClientURL()}, Prefix: "SMALL", Timeout: time.Second})
	if err == nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "DeadLetterMaxBytes") {
		t.Fatalf("Open = %v, want a refusal naming DeadLetterMaxBytes", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Open took %v to give up: the refusal is retried", took)
	}
	q, err := Open(ctx, Config{Servers: []string{s.ClientURL()}, Prefix: "SMALL", DeadLetterMaxBytes: 64 << 20})
	if err != nil {
		t.Fatalf("Open with a dead-letter bound that fits: %v", err)
	}
	_ = q.Close()
}

// TestReopenWithAnotherDeadLetterBound: a store reopened with a smaller
// dead-letter bound (the work stream's share grows into the room the dead
// letters give back) and then a larger one opens both times; the dead
// letters stored above the new bound stay until the next one needs room.
func TestReopenWithAnotherDeadLetterBound(t *testing.T) {
	dir := t.TempDir()
	open := func(deadMax int64) *Queue {
		t.Helper()
		q, err := Open(t.Context(), Config{Dir: dir, MaxDisk: 64 << 20, DeadLetterMaxBytes: deadMax, Prefix: "RE"})
		if err != nil {
			t.Fatalf("open with DeadLetterMaxBytes %d: %v", deadMax, err)
		}
		return q
	}
	bury := func(q *Queue, n int, drops *dropCounter) {
		t.Helper()
		w, err := q.Consume("orders", fast(Policy{}), newRecorder(rejectBad).handle, WorkerOptions{OnDeadLetterDropped: drops.dropped})
		if err != nil {
			t.Fatal(err)
		}
		defer stopWorker(t, w)
		bad := make([]byte, 1_000_000)
		bad[0] = 'b'
		for range n {
			id, _, err := q.Enqueue(t.Context(), "orders", Message{Data: bad})
			if err != nil {
				t.Fatal(err)
			}
			waitState(t, q, id, StateDead)
		}
	}
	count := func(q *Queue) int {
		t.Helper()
		st, err := q.Stats(t.Context(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		return st.DeadLetters
	}
	q := open(20 << 20)
	bury(q, 8, &dropCounter{})
	_ = q.Close()

	q = open(3 << 20)
	if n := count(q); n != 8 {
		t.Fatalf("%d dead letters after reopening with a smaller bound, want the 8 kept", n)
	}
	drops := &dropCounter{}
	bury(q, 1, drops)
	if n, d := count(q), len(drops.all()); n > 3 || n+d != 9 {
		t.Fatalf("%d dead letters kept and %d dropped, want at most 3 kept of 9", n, d)
	}
	_ = q.Close()
	_ = open(20 << 20).Close()
}
