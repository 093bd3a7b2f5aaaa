package queue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestLongHandlerNotRedelivered: a handler that runs several AckWaits
// keeps its job (the worker reports progress), so it is delivered once.
func TestLongHandlerNotRedelivered(t *testing.T) {
	q := openEmbedded(t, nil)
	var calls atomic.Int32
	done := make(chan struct{})
	w, err := q.Consume("slow", fast(Policy{AckWait: 150 * time.Millisecond, Concurrency: 2}),
		func(ctx context.Context, j *Job) Result {
			if calls.Add(1) == 1 {
				// Work for four ack waits.
				select {
				case <-time.After(600 * time.Millisecond):
				case <-ctx.Done():
				}
				close(done)
			}
			return Result{Outcome: Delivered}
		}, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, _ := q.Enqueue(t.Context(), "slow", Message{})
	<-done
	waitState(t, q, id, StateDelivered)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

// TestStopCancelsHandlers: Stop waits for handlers until its context ends,
// then cancels them; their job is delivered again to the next worker.
func TestStopCancelsHandlers(t *testing.T) {
	q := openEmbedded(t, nil)
	started := make(chan struct{})
	w, err := q.Consume("orders", fast(Policy{}), func(ctx context.Context, j *Job) Result {
		close(started)
		<-ctx.Done()
		return Result{Outcome: Failed, Reason: "canceled"}
	}, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := q.Enqueue(t.Context(), "orders", Message{})
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := w.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want DeadlineExceeded", err)
	}
	rec := newRecorder(nil)
	w2, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w2)
	if j := rec.next(t); j.ID != id || j.Attempt != 2 {
		t.Fatalf("redelivered job = %+v, want %s attempt 2 (the cut attempt counts)", j, id)
	}
}

// TestCloseStopsWorkers: Close stops the workers still running.
func TestCloseStopsWorkers(t *testing.T) {
	q, err := Open(t.Context(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Consume("orders", Policy{}, func(context.Context, *Job) Result { return Result{} }, WorkerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Consume("orders", Policy{}, func(context.Context, *Job) Result { return Result{} }, WorkerOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Consume after Close = %v", err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: "none"}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 500: time.Second} {
		if got := b.delay(n); got != want {
			t.Errorf("delay(%d) = %v, want %v", n, got, want)
		}
	}
	for _, j := range []string{"full", "equal"} {
		b.Jitter = j
		for range 100 {
			d := b.delay(3)
			if d < 0 || d > 400*time.Millisecond || (j == "equal" && d < 200*time.Millisecond) {
				t.Fatalf("%s jitter: delay(3) = %v", j, d)
			}
		}
	}
}

func TestReasonOfAndOutcome(t *testing.T) {
	for err, want := range map[error]string{nil: "", ErrFull: ReasonFull, ErrUnavailable: ReasonUnavailable,
		ErrClosed: ReasonUnavailable, errors.New("x"): ReasonUnavailable} {
		if got := ReasonOf(err); got != want {
			t.Errorf("ReasonOf(%v) = %q, want %q", err, got, want)
		}
	}
	for o, want := range map[Outcome]string{Delivered: "delivered", Failed: "failed", Rejected: "rejected", Paused: "paused", 9: "outcome(9)"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q", int(o), o.String())
		}
	}
}

// TestRetentionExpires: a job's status and its dead letter live for the
// queue's Retention (per-message TTLs), then are gone.
func TestRetentionExpires(t *testing.T) {
	q := openEmbedded(t, nil)
	rec := newRecorder(func(*Job) Result { return Result{Outcome: Rejected, Status: 400} })
	w, err := q.Consume("short", fast(Policy{Retention: time.Second}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, _ := q.Enqueue(t.Context(), "short", Message{})
	waitState(t, q, id, StateDead)
	eventually(t, "status and dead letter expired", func() bool {
		_, err := q.Status(t.Context(), id)
		return errors.Is(err, ErrNotFound)
	})
	if _, err := q.DeadLetterByID(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dead letter after retention: %v", err)
	}
}
