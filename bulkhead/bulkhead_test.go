package bulkhead_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder keeps the events policies report.
type recorder = spillwaytest.Recorder

// result is what a background Acquire ended with.
type result struct {
	permit spillway.Permit
	err    error
}

// acquireAsync starts Acquire in a goroutine and returns the channel its
// result arrives on.
func acquireAsync(ctx context.Context, b *bulkhead.Bulkhead) <-chan result {
	ch := make(chan result, 1)
	go func() {
		p, err := b.Acquire(ctx)
		ch <- result{p, err}
	}()
	return ch
}

// pending reports whether ch has no result yet.
func pending(ch <-chan result) bool { return len(ch) == 0 }

func mustAcquire(t *testing.T, b *bulkhead.Bulkhead) spillway.Permit {
	t.Helper()
	p, err := b.Acquire(t.Context())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return p
}

func checkCounts(t *testing.T, b *bulkhead.Bulkhead, inFlight, waiting int) {
	t.Helper()
	if b.InFlight() != inFlight || b.Waiting() != waiting {
		t.Fatalf("InFlight, Waiting = %d, %d; want %d, %d", b.InFlight(), b.Waiting(), inFlight, waiting)
	}
}

func isFull(err error) bool {
	var e *spillway.Error
	return errors.Is(err, bulkhead.ErrFull) && errors.As(err, &e) && e.Code == spillway.ReasonBulkheadFull
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name                   string
		cfg                    bulkhead.Config
		wantErr                string
		wantLimit, wantWaiting int
	}{
		{"zero value means the defaults", bulkhead.Config{}, "", 100, 0},
		{"explicit", bulkhead.Config{MaxConcurrent: 7, MaxWaiting: 3, MaxWait: time.Second}, "", 7, 3},
		{"negative MaxConcurrent", bulkhead.Config{MaxConcurrent: -1}, "bulkhead: MaxConcurrent must be >= 0 (0 means 100), got -1", 0, 0},
		{"negative MaxWaiting", bulkhead.Config{MaxWaiting: -2}, "bulkhead: MaxWaiting must be >= 0, got -2", 0, 0},
		{"negative MaxWait", bulkhead.Config{MaxWait: -time.Second}, "bulkhead: MaxWait must be >= 0, got -1s", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bulkhead.New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Limit() != tt.wantLimit || b.MaxWaiting() != tt.wantWaiting {
				t.Fatalf("Limit, MaxWaiting = %d, %d; want %d, %d", b.Limit(), b.MaxWaiting(), tt.wantLimit, tt.wantWaiting)
			}
		})
	}
}

func TestMustNewPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("MustNew did not panic")
		}
	}()
	bulkhead.MustNew(bulkhead.Config{MaxConcurrent: -1})
}

func TestFullBulkheadRejectsAtOnceByDefault(t *testing.T) {
	rec := &recorder{}
	b := bulkhead.MustNew(bulkhead.Config{Name: "db", MaxConcurrent: 2, Observer: rec})
	p1 := mustAcquire(t, b)
	p2, ok := b.TryAcquire()
	if !ok {
		t.Fatal("TryAcquire refused the second slot")
	}
	checkCounts(t, b, 2, 0)

	_, err := b.Acquire(t.Context())
	var e *spillway.Error
	if !errors.As(err, &e) {
		t.Fatalf("Acquire on a full bulkhead = %v, want *spillway.Error", err)
	}
	want := spillway.Error{Code: spillway.ReasonBulkheadFull, Policy: "bulkhead", Name: "db", Err: bulkhead.ErrFull}
	if *e != want {
		t.Fatalf("error = %+v, want %+v", *e, want)
	}
	if !spillway.IsRejection(err) || spillway.ReasonOf(err) != spillway.ReasonBulkheadFull {
		t.Fatalf("err %v: IsRejection %v, ReasonOf %q", err, spillway.IsRejection(err), spillway.ReasonOf(err))
	}
	if err.Error() != `spillway: bulkhead "db": bulkhead full` {
		t.Fatalf("message = %q", err.Error())
	}
	if _, ok := b.TryAcquire(); ok {
		t.Fatal("TryAcquire admitted a third call")
	}
	if b.Rejected() != 1 {
		t.Fatalf("Rejected = %d, want 1 (TryAcquire's refusals are not counted)", b.Rejected())
	}
	wantEv := spillway.Event{Kind: spillway.EventRejection, Policy: "bulkhead", Name: "db", Reason: spillway.ReasonBulkheadFull}
	if ev := rec.Events(); len(ev) != 1 || ev[0] != wantEv {
		t.Fatalf("events = %+v, want [%+v]", ev, wantEv)
	}

	p1.Release(nil)
	checkCounts(t, b, 1, 0)
	p3 := mustAcquire(t, b)
	p2.Release(errors.New("outcome does not matter"))
	p3.Release(nil)
	checkCounts(t, b, 0, 0)
}

func TestWaitingIsFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 5})
		held := mustAcquire(t, b)
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				_ = b.Execute(t.Context(), func(context.Context) error {
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					return nil
				})
			})
			synctest.Wait() // waiter i is queued before i+1 arrives
		}
		checkCounts(t, b, 1, 5)
		if _, ok := b.TryAcquire(); ok {
			t.Fatal("TryAcquire barged past the queue")
		}
		held.Release(nil)
		wg.Wait()
		for i, got := range order {
			if got != i {
				t.Fatalf("admission order = %v, want 0..4", order)
			}
		}
		checkCounts(t, b, 0, 0)
	})
}

// TestNoBargingOnRelease checks that a slot released while callers wait goes
// to the oldest of them, even though a newcomer asks for it first.
func TestNoBargingOnRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 2})
		held := mustAcquire(t, b)
		first := acquireAsync(t.Context(), b)
		synctest.Wait()
		held.Release(nil)
		// The slot is already first's: a newcomer queues behind.
		second := acquireAsync(t.Context(), b)
		synctest.Wait()
		r := <-first
		if r.err != nil {
			t.Fatalf("oldest waiter: %v", r.err)
		}
		if !pending(second) {
			t.Fatal("the newcomer took the slot")
		}
		checkCounts(t, b, 1, 1)
		r.permit.Release(nil)
		r = <-second
		r.permit.Release(nil)
		checkCounts(t, b, 0, 0)
	})
}

func TestQueueFullRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 1})
		held := mustAcquire(t, b)
		waiter := acquireAsync(t.Context(), b)
		synctest.Wait()
		if _, err := b.Acquire(t.Context()); !isFull(err) {
			t.Fatalf("Acquire with a full queue = %v, want bulkhead_full", err)
		}
		if b.Rejected() != 1 {
			t.Fatalf("Rejected = %d", b.Rejected())
		}
		held.Release(nil)
		(<-waiter).permit.Release(nil)
		checkCounts(t, b, 0, 0)
	})
}

func TestMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: 2 * time.Second, Observer: rec})
		held := mustAcquire(t, b)
		start := time.Now()
		_, err := b.Acquire(t.Context())
		if !isFull(err) {
			t.Fatalf("Acquire past MaxWait = %v, want bulkhead_full", err)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Fatalf("waited %v, want MaxWait (2s)", waited)
		}
		if b.Rejected() != 1 || len(rec.Events()) != 1 {
			t.Fatalf("Rejected = %d, events = %d; want 1, 1", b.Rejected(), len(rec.Events()))
		}
		checkCounts(t, b, 1, 0)

		// A slot released within MaxWait is taken.
		time.AfterFunc(time.Second, func() { held.Release(nil) })
		p, err := b.Acquire(t.Context())
		if err != nil {
			t.Fatalf("Acquire with a release after 1s: %v", err)
		}
		p.Release(nil)
		checkCounts(t, b, 0, 0)
	})
}

func TestContextEndsWhileWaiting(t *testing.T) {
	myCause := errors.New("client went away")
	tests := []struct {
		name    string
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"cancel", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(time.Second, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, time.Second)
		}, context.DeadlineExceeded},
		{"cancel with a cause", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(ctx)
			time.AfterFunc(time.Second, func() { cancel(myCause) })
			return ctx, func() { cancel(nil) }
		}, myCause},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Hour})
				held := mustAcquire(t, b)
				defer held.Release(nil)
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				_, err := b.Acquire(ctx)
				if err != tt.wantErr {
					t.Fatalf("Acquire = %v, want %v", err, tt.wantErr)
				}
				if isFull(err) || b.Rejected() != 0 {
					t.Fatalf("the caller's context ending is not a rejection (Rejected = %d)", b.Rejected())
				}
				checkCounts(t, b, 1, 0)
			})
		})
	}
}

func TestDoneContextDoesNotQueue(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 1})
	held := mustAcquire(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Acquire(ctx); err != context.Canceled {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
	checkCounts(t, b, 1, 0)
	held.Release(nil)
}

// TestGrantRacesWithWaitEnd makes the slot arrive at the very instant the
// waiter's MaxWait or context ends. Whichever wins, the slot is counted once
// and never lost.
func TestGrantRacesWithWaitEnd(t *testing.T) {
	for _, end := range []string{"maxwait", "deadline"} {
		t.Run(end, func(t *testing.T) {
			outcomes := map[string]int{}
			for range 50 {
				synctest.Test(t, func(t *testing.T) {
					cfg := bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 2}
					ctx := t.Context()
					if end == "maxwait" {
						cfg.MaxWait = time.Second
					} else {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, time.Second)
						defer cancel()
					}
					b := bulkhead.MustNew(cfg)
					held := mustAcquire(t, b)
					time.AfterFunc(time.Second, func() { held.Release(nil) })
					racer := acquireAsync(ctx, b)
					// A second waiter, whose MaxWait ends later, takes the
					// slot if the racer passes it on. (time.Sleep advances
					// the bubble's fake clock.)
					time.Sleep(time.Second / 2)
					patient := acquireAsync(t.Context(), b)
					synctest.Wait()
					r := <-racer
					synctest.Wait()
					switch {
					case r.err == nil:
						outcomes["granted"]++
						checkCounts(t, b, 1, 1)
						r.permit.Release(nil)
					case end == "maxwait" && isFull(r.err), end == "deadline" && r.err == context.DeadlineExceeded:
						outcomes["left"]++
					default:
						t.Fatalf("racer = %v", r.err)
					}
					p := <-patient
					if p.err != nil {
						t.Fatalf("patient waiter: %v", p.err)
					}
					checkCounts(t, b, 1, 0)
					p.permit.Release(nil)
					checkCounts(t, b, 0, 0)
				})
			}
			t.Logf("outcomes: %v", outcomes)
		})
	}
}

func TestResizeGrowAdmitsWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 3})
		held := mustAcquire(t, b)
		var waiters []<-chan result
		for range 3 {
			waiters = append(waiters, acquireAsync(t.Context(), b))
			synctest.Wait()
		}
		checkCounts(t, b, 1, 3)
		if err := b.Resize(3, 3); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		checkCounts(t, b, 3, 1)
		if pending(waiters[0]) || pending(waiters[1]) || !pending(waiters[2]) {
			t.Fatal("growing by 2 must admit the 2 oldest waiters")
		}
		held.Release(nil)
		for _, w := range waiters {
			(<-w).permit.Release(nil)
		}
		checkCounts(t, b, 0, 0)
	})
}

func TestResizeShrinkLetsInFlightFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 3, MaxWaiting: 2})
		held := []spillway.Permit{mustAcquire(t, b), mustAcquire(t, b), mustAcquire(t, b)}
		waiter := acquireAsync(t.Context(), b)
		synctest.Wait()
		if err := b.Resize(1, 0); err != nil {
			t.Fatal(err)
		}
		if b.Limit() != 1 || b.MaxWaiting() != 0 {
			t.Fatalf("Limit, MaxWaiting = %d, %d", b.Limit(), b.MaxWaiting())
		}
		// The queued caller keeps its place although MaxWaiting is now 0.
		checkCounts(t, b, 3, 1)
		if _, err := b.Acquire(t.Context()); !isFull(err) {
			t.Fatalf("Acquire after shrinking = %v, want bulkhead_full", err)
		}
		held[0].Release(nil)
		held[1].Release(nil)
		synctest.Wait()
		if !pending(waiter) {
			t.Fatal("admitted a waiter while in-flight >= the new limit")
		}
		checkCounts(t, b, 1, 1)
		held[2].Release(nil)
		r := <-waiter
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkCounts(t, b, 1, 0)
		r.permit.Release(nil)
		checkCounts(t, b, 0, 0)
	})
}

func TestResizeValidation(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 4, MaxWaiting: 2})
	tests := []struct {
		n, w    int
		wantErr string
	}{
		{-1, 0, "bulkhead: Resize maxConcurrent must be >= 0 (0 means 100), got -1"},
		{1, -1, "bulkhead: Resize maxWaiting must be >= 0, got -1"},
	}
	for _, tt := range tests {
		if err := b.Resize(tt.n, tt.w); err == nil || err.Error() != tt.wantErr {
			t.Errorf("Resize(%d, %d) = %v, want %q", tt.n, tt.w, err, tt.wantErr)
		}
	}
	if b.Limit() != 4 || b.MaxWaiting() != 2 {
		t.Fatalf("a rejected Resize changed the limits to %d, %d", b.Limit(), b.MaxWaiting())
	}
}

// TestResizeZeroMeansDefault checks that 0 means what it means in Config
// (DefaultMaxConcurrent) rather than an error: one rule for both.
func TestResizeZeroMeansDefault(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 4})
	if err := b.Resize(0, 1); err != nil {
		t.Fatalf("Resize(0, 1) = %v", err)
	}
	if b.Limit() != bulkhead.DefaultMaxConcurrent || b.MaxWaiting() != 1 {
		t.Fatalf("after Resize(0, 1): limit %d, waiting %d; want %d, 1", b.Limit(), b.MaxWaiting(), bulkhead.DefaultMaxConcurrent)
	}
}

func TestExecuteReleasesOnPanic(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the panic to go on", r)
			}
		}()
		_ = b.Execute(t.Context(), func(context.Context) error { panic("boom") })
	}()
	checkCounts(t, b, 0, 0)
	func() {
		defer func() { _ = recover() }()
		_, _ = bulkhead.Do(t.Context(), b, func(context.Context) (int, error) { panic("boom") })
	}()
	checkCounts(t, b, 0, 0)
}

func TestExecuteAndDo(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	errBoom := errors.New("boom")
	err := b.Execute(t.Context(), func(context.Context) error {
		checkCounts(t, b, 1, 0)
		if err := b.Execute(t.Context(), func(context.Context) error { return nil }); !isFull(err) {
			t.Errorf("nested Execute = %v, want bulkhead_full", err)
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("Execute = %v, want fn's error", err)
	}
	v, err := bulkhead.Do(t.Context(), b, func(context.Context) (string, error) { return "ok", nil })
	if v != "ok" || err != nil {
		t.Fatalf("Do = %q, %v", v, err)
	}
	checkCounts(t, b, 0, 0)
}

func TestForeignPermitsAreIgnored(t *testing.T) {
	a := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	pa := mustAcquire(t, a)
	pb := mustAcquire(t, b)
	b.ReleasePermit(pa, nil)
	b.ReleasePermit(spillway.Permit{}, nil)
	checkCounts(t, b, 1, 0)
	pa.Release(nil)
	pb.Release(nil)
	checkCounts(t, a, 0, 0)
	checkCounts(t, b, 0, 0)
}

func TestDoubleReleasePanics(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	p := mustAcquire(t, b)
	p.Release(nil)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "released more often") {
			t.Fatalf("recovered %v, want the double-release panic", r)
		}
	}()
	p.Release(nil)
}

// TestPipelineGuard runs the bulkhead as a spillway.Pipeline guard.
func TestPipelineGuard(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Guards: []spillway.Guard{b}})
	v, err := pl.Execute(t.Context(), func(ctx context.Context) (int, error) {
		if _, err := pl.Execute(ctx, func(context.Context) (int, error) { return 0, nil }); !isFull(err) {
			t.Errorf("nested execution = %v, want bulkhead_full", err)
		}
		return b.InFlight(), nil
	})
	if v != 1 || err != nil {
		t.Fatalf("Execute = %d, %v", v, err)
	}
	checkCounts(t, b, 0, 0)
}

func TestSetMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 1})
		held := mustAcquire(t, b)
		if err := b.SetMaxWait(-1); err == nil {
			t.Error("SetMaxWait(-1) succeeded")
		}
		if err := b.SetMaxWait(time.Second); err != nil || b.MaxWait() != time.Second {
			t.Fatalf("SetMaxWait(1s): %v, MaxWait %v", err, b.MaxWait())
		}
		start := time.Now()
		r := <-acquireAsync(t.Context(), b)
		if !errors.Is(r.err, bulkhead.ErrFull) || time.Since(start) != time.Second {
			t.Errorf("queued caller: %v after %v, want ErrFull after 1s", r.err, time.Since(start))
		}
		held.Release(nil)
		checkCounts(t, b, 0, 0)
	})
}
