package spillway_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// recordingGuard admits calls unless refuse is set and logs every acquire
// and release, so tests can check order and exactly-once release.
type recordingGuard struct {
	name   string
	refuse error
	mu     *sync.Mutex
	log    *[]string
	held   int
}

func (g *recordingGuard) Acquire(context.Context) (spillway.Permit, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refuse != nil {
		*g.log = append(*g.log, g.name+" refuse")
		return spillway.Permit{}, g.refuse
	}
	g.held++
	*g.log = append(*g.log, g.name+" acquire")
	return spillway.NewPermit(g, 7, 9), nil
}

func (g *recordingGuard) ReleasePermit(p spillway.Permit, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a, b := p.Words(); a != 7 || b != 9 {
		panic("permit words lost")
	}
	g.held--
	outcome := "ok"
	var pe *spillway.PanicError
	switch {
	case errors.As(err, &pe):
		outcome = "panic"
	case err != nil:
		outcome = "err"
	}
	*g.log = append(*g.log, g.name+" release "+outcome)
}

func newGuards(names ...string) ([]*recordingGuard, *[]string) {
	var mu sync.Mutex
	log := &[]string{}
	gs := make([]*recordingGuard, len(names))
	for i, n := range names {
		gs[i] = &recordingGuard{name: n, mu: &mu, log: log}
	}
	return gs, log
}

// countingRetrier retries every error up to max attempts with a
// millisecond's delay; live makes it retry on a done context too, so that
// the backoff is what sees the context's end.
type countingRetrier struct {
	max, begun int
	live       bool
}

func (r *countingRetrier) Begin() spillway.RetryState { r.begun++; return spillway.RetryState{} }
func (r *countingRetrier) Next(ctx context.Context, s spillway.RetryState, err error) (spillway.RetryState, time.Duration, error) {
	if spillway.IsRejection(err) || s.Attempts >= r.max || ctx.Err() != nil && !r.live {
		return s, 0, err
	}
	return s, time.Millisecond, nil
}

type staticFallback struct{ v string }

func (f staticFallback) Fallback(ctx context.Context, err error) (string, string, error) {
	if f.v == "" {
		return "", "", err
	}
	return f.v, "static", nil
}

func TestPipelineGuardsAcquireInOrderReleaseInReverse(t *testing.T) {
	gs, log := newGuards("breaker", "bulkhead")
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{gs[0], gs[1]}})
	v, err := pl.Execute(context.Background(), func(context.Context) (string, error) { return "hi", nil })
	if v != "hi" || err != nil {
		t.Fatalf("Execute = %q, %v", v, err)
	}
	want := "breaker acquire,bulkhead acquire,bulkhead release ok,breaker release ok"
	if got := strings.Join(*log, ","); got != want {
		t.Errorf("log = %s\nwant  %s", got, want)
	}
}

func TestPipelineRefusalReleasesEarlierPermitsAndSkipsTheCall(t *testing.T) {
	gs, log := newGuards("breaker", "bulkhead")
	full := &spillway.Error{Code: spillway.ReasonBulkheadFull, Policy: "bulkhead"}
	gs[1].refuse = full
	r := &countingRetrier{max: 3}
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: r, Breaker: gs[0], Bulkhead: gs[1]})
	called := false
	res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) { called = true; return "", nil })
	if called || res.Attempts != 0 || spillway.ReasonOf(res.Err) != spillway.ReasonBulkheadFull {
		t.Fatalf("called=%v result=%+v", called, res)
	}
	want := "breaker acquire,bulkhead refuse,breaker release err"
	if got := strings.Join(*log, ","); got != want {
		t.Errorf("log = %s, want %s (a rejection is never retried)", got, want)
	}
}

func TestPipelineRetriesThroughGuardsUntilSuccess(t *testing.T) {
	gs, _ := newGuards("breaker")
	r := &countingRetrier{max: 5}
	obs := spillway.NewChannelObserver(16)
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Retry: r, Guards: []spillway.Guard{gs[0]}, Observer: obs, Name: "p"})
	calls := 0
	res := pl.ExecuteResult(context.Background(), func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errDown
		}
		return 42, nil
	})
	if res.Value != 42 || res.Err != nil || res.Attempts != 3 || r.begun != 1 || gs[0].held != 0 {
		t.Fatalf("result %+v, begun %d, held %d", res, r.begun, gs[0].held)
	}
	if len(obs.C) != 3 {
		t.Fatalf("want one EventAttempt per attempt, got %d", len(obs.C))
	}
	for i := 1; i <= 3; i++ {
		e := <-obs.C
		if e.Kind != spillway.EventAttempt || e.Attempt != i || e.Name != "p" || (i < 3) != (e.Err != nil) {
			t.Errorf("event %d = %+v", i, e)
		}
	}
}

func TestPipelineExhaustedRetriesReachTheFallback(t *testing.T) {
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: staticFallback{"cached"}, Retry: &countingRetrier{max: 2}})
	res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) { return "", errDown })
	if res.Value != "cached" || res.Err != nil || res.Fallback != "static" || res.Attempts != 2 {
		t.Fatalf("result %+v", res)
	}
	pl = spillway.MustNewPipeline(spillway.Policies[string]{Fallback: staticFallback{}})
	if _, err := pl.Execute(context.Background(), func(context.Context) (string, error) { return "", errDown }); !errors.Is(err, errDown) {
		t.Fatalf("a fallback that does not serve must leave the error: %v", err)
	}
}

func TestPipelinePanicReleasesEveryPermitOnce(t *testing.T) {
	gs, log := newGuards("breaker", "bulkhead")
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Guards: []spillway.Guard{gs[0], gs[1]}})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the original panic value", r)
			}
		}()
		_ = pl.Run(context.Background(), func(context.Context) error { panic("boom") })
	}()
	want := "breaker acquire,bulkhead acquire,bulkhead release panic,breaker release panic"
	if got := strings.Join(*log, ","); got != want || gs[0].held != 0 || gs[1].held != 0 {
		t.Errorf("log = %s, want %s", got, want)
	}
}

func TestPipelineStopsBeforeAnAttemptWhenTheContextIsDone(t *testing.T) {
	gs, log := newGuards("breaker")
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Guards: []spillway.Guard{gs[0]}, Retry: &countingRetrier{max: 3}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := pl.ExecuteResult(ctx, func(context.Context) (int, error) { t.Fatal("must not run"); return 0, nil })
	if !errors.Is(res.Err, context.Canceled) || res.Attempts != 0 || len(*log) != 0 {
		t.Fatalf("result %+v, log %v", res, *log)
	}
}

func TestPipelineRejectsTooManyGuards(t *testing.T) {
	gs, _ := newGuards("1", "2", "3", "4", "5", "6", "7", "8", "9")
	guards := make([]spillway.Guard, len(gs))
	for i, g := range gs {
		guards[i] = g
	}
	if _, err := spillway.NewPipeline(spillway.Policies[int]{Guards: guards}); err == nil ||
		err.Error() != "spillway: a pipeline takes at most 8 guards, got 9" {
		t.Fatalf("NewPipeline with nine guards: %v", err)
	}
	// Eight guards and no breaker or bulkhead are eight.
	if _, err := spillway.NewPipeline(spillway.Policies[int]{Guards: guards[:8]}); err != nil {
		t.Fatalf("NewPipeline with eight guards: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustNewPipeline with nine guards must panic")
		}
	}()
	spillway.MustNewPipeline(spillway.Policies[int]{Guards: guards})
}

type nopGuard struct{}

func (nopGuard) Acquire(context.Context) (spillway.Permit, error) {
	return spillway.NewPermit(nopGuard{}, 1, 2), nil
}
func (nopGuard) ReleasePermit(spillway.Permit, error) {}

type nopRetrier struct{}

func (nopRetrier) Begin() spillway.RetryState { return spillway.RetryState{} }
func (nopRetrier) Next(_ context.Context, s spillway.RetryState, err error) (spillway.RetryState, time.Duration, error) {
	return s, 0, err
}

func TestPipelineSuccessPathAllocatesNothing(t *testing.T) {
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Fallback: intFallback{}, Retry: nopRetrier{}, Breaker: nopGuard{}, Bulkhead: nopGuard{}})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	if n := testing.AllocsPerRun(1000, func() { _, _ = pl.Execute(ctx, fn) }); n != 0 {
		t.Fatalf("Execute allocates %v times per call, want 0", n)
	}
}

type intFallback struct{}

func (intFallback) Fallback(_ context.Context, err error) (int, string, error) { return 0, "", err }

// cancelRecorder is a Timeouter that records whether its context was cancelled.
type cancelRecorder struct{ cancelled bool }

func (c *cancelRecorder) Start(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	return ctx, func() { c.cancelled = true; cancel() }
}
func (c *cancelRecorder) Finish(_ context.Context, err error) error { return err }

func TestPipelinePanicCancelsTheAttemptContext(t *testing.T) {
	attempt := &cancelRecorder{}
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Attempt: attempt})
	func() {
		defer func() { _ = recover() }()
		_ = pl.Run(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if !attempt.cancelled {
		t.Fatal("a panicking call must not leave its attempt context (and timer) alive")
	}
}

// settableTimeout is a timeout whose limit can change after the pipeline
// is built, as timeout.Timeout's SetDuration does.
type settableTimeout struct {
	d    time.Duration
	name string
}

func (f *settableTimeout) Start(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.d)
}
func (*settableTimeout) Finish(_ context.Context, err error) error { return err }
func (f *settableTimeout) Duration() time.Duration                 { return f.d }
func (f *settableTimeout) Name() string                            { return f.name }

func TestPipelineWarnsOfATimeoutChangedAfterConstruction(t *testing.T) {
	attempt := &settableTimeout{d: time.Second, name: "attempt"}
	total := &settableTimeout{d: 3 * time.Second, name: "total"}
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Attempt: attempt, Total: total, Retry: nopRetrier{}})
	if w := pl.Warnings(); w != nil {
		t.Fatalf("Warnings() = %q, want none", w)
	}
	attempt.d = 5 * time.Second
	want := "attempt timeout 5s >= total timeout 3s: a timed-out attempt leaves no time for a retry"
	if w := pl.Warnings(); len(w) != 1 || w[0] != want {
		t.Fatalf("Warnings() = %q, want %q", w, want)
	}
}
