package spillway_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// TestEngineKeepsPermitsPastASuccessfulCallOnly: the permits of the guards
// in Keep outlive a call that returned no error, and are released exactly
// once by their holder; after a failed call the engine releases them with
// the others (what BulkheadSpansBody and a gRPC stream rely on).
func TestEngineKeepsPermitsPastASuccessfulCallOnly(t *testing.T) {
	gs, log := newGuards("breaker", "bulkhead")
	e := spillway.NewEngine(spillway.EngineConfig[int]{Guards: []spillway.Guard{gs[0], gs[1]}, Keep: []spillway.Guard{gs[1]}})
	ctx := context.Background()

	var kept spillway.Permits
	if _, started, _, err := e.Attempt(ctx, ctx, 1, func(context.Context) (int, error) { return 1, nil }, &kept); err != nil || !started {
		t.Fatalf("err %v, started %v", err, started)
	}
	if got, want := strings.Join(*log, ","), "breaker acquire,bulkhead acquire,breaker release ok"; got != want {
		t.Fatalf("after the attempt: %s, want %s", got, want)
	}
	kept.Release(nil)
	kept.Release(nil)
	if gs[1].held != 0 || len(*log) != 4 || (*log)[3] != "bulkhead release ok" {
		t.Fatalf("kept permit released %v, held %d: want once", *log, gs[1].held)
	}

	*log = nil
	var none spillway.Permits
	_, _, _, _ = e.Attempt(ctx, ctx, 1, func(context.Context) (int, error) { return 0, errDown }, &none)
	want := "breaker acquire,bulkhead acquire,bulkhead release err,breaker release err"
	if got := strings.Join(*log, ","); got != want || gs[0].held != 0 || gs[1].held != 0 {
		t.Fatalf("after a failed call: %s, want %s", got, want)
	}
}

// TestPermitsTake: a permit taken out of a Permits is no longer released
// with the others.
func TestPermitsTake(t *testing.T) {
	gs, log := newGuards("breaker", "bulkhead")
	e := spillway.NewEngine(spillway.EngineConfig[int]{Guards: []spillway.Guard{gs[0], gs[1]}, Keep: []spillway.Guard{gs[0], gs[1]}})
	ctx := context.Background()
	var kept spillway.Permits
	_, _, _, _ = e.Attempt(ctx, ctx, 1, func(context.Context) (int, error) { return 1, nil }, &kept)
	kept.Take(gs[0]).Release(nil)
	if p := kept.Take(gs[0]); p.Releaser() != nil {
		t.Fatal("a permit was taken twice")
	}
	kept.Release(errDown)
	want := "breaker acquire,bulkhead acquire,breaker release ok,bulkhead release err"
	if got := strings.Join(*log, ","); got != want {
		t.Fatalf("log %s, want %s", got, want)
	}
}

// TestEngineJudge is the one classification every integration uses.
func TestEngineJudge(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel2()
	live := context.Background()
	standIn := errors.New("stands for a failing result")
	classify := func(r int, err error) (spillway.Outcome, error) {
		switch r {
		case 1:
			return spillway.Failure, standIn
		case 2:
			return spillway.Ignored, nil
		}
		if err != nil {
			return spillway.Failure, err
		}
		return spillway.Success, nil
	}
	tests := []struct {
		name          string
		caller        context.Context
		counts        bool
		r             int
		err           error
		callerDone    bool
		release, fail error
	}{
		{"success", live, false, 0, nil, false, nil, nil},
		{"failure", live, false, 0, errDown, false, errDown, errDown},
		{"a result that fails", live, false, 1, nil, false, standIn, standIn},
		{"ignored", live, false, 2, nil, true, nil, nil},
		{"caller cancelled", cancelled, false, 0, errDown, true, nil, errDown},
		{"caller cancelled, deadline counted", cancelled, true, 0, errDown, true, nil, errDown},
		{"caller deadline", expired, false, 0, errDown, true, nil, errDown},
		{"caller deadline counted", expired, true, 0, errDown, false, errDown, errDown},
		{"caller done, call succeeded", cancelled, false, 0, nil, false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := spillway.NewEngine(spillway.EngineConfig[int]{Classify: classify, CallerDeadlineCounts: tt.counts})
			release, fail := e.Judge(tt.caller, tt.r, tt.err)
			if tt.callerDone {
				if !errors.Is(release, spillway.ErrCallerDone) {
					t.Fatalf("release %v, want it marked CallerDone", release)
				}
			} else if release != tt.release {
				t.Fatalf("release %v, want %v", release, tt.release)
			}
			if fail != tt.fail {
				t.Fatalf("failure %v, want %v", fail, tt.fail)
			}
		})
	}
}

// TestEngineAttemptEvent: one EventAttempt per attempt made, none for an
// attempt a guard refused.
func TestEngineAttemptEvent(t *testing.T) {
	gs, _ := newGuards("breaker")
	obs := spillway.NewChannelObserver(4)
	e := spillway.NewEngine(spillway.EngineConfig[int]{Guards: []spillway.Guard{gs[0]}, Observer: obs, Policy: "p", Name: "n"})
	ctx := context.Background()
	_, _, _, _ = e.Attempt(ctx, ctx, 2, func(context.Context) (int, error) { return 0, errDown }, nil)
	gs[0].refuse = errors.New("no")
	_, _, _, _ = e.Attempt(ctx, ctx, 3, func(context.Context) (int, error) { return 0, nil }, nil)
	if len(obs.C) != 1 {
		t.Fatalf("%d events, want 1", len(obs.C))
	}
	ev := <-obs.C
	if ev.Kind != spillway.EventAttempt || ev.Policy != "p" || ev.Name != "n" || ev.Attempt != 2 || ev.Err != errDown || ev.Context != ctx {
		t.Fatalf("event %+v", ev)
	}
}

// TestRetry is the one retry loop: it asks the Retrier, pauses before each
// backoff, and tells how it ended.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	t.Run("done on success", func(t *testing.T) {
		var s spillway.RetryState
		pauses := 0
		end, err := spillway.Retry(ctx, &countingRetrier{max: 5}, &s, errDown, func(n int) (bool, error) {
			if n != s.Attempts+1 {
				t.Fatalf("attempt %d, state %d", n, s.Attempts)
			}
			if n < 3 {
				return true, errDown
			}
			return true, nil
		}, func() { pauses++ })
		if err != nil || end != spillway.RetryDone || s.Attempts != 2 || pauses != 2 {
			t.Fatalf("err %v, end %v, attempts %d, pauses %d", err, end, s.Attempts, pauses)
		}
	})
	t.Run("done when an attempt's failure may not be retried", func(t *testing.T) {
		var s spillway.RetryState
		end, err := spillway.Retry(ctx, &countingRetrier{max: 5}, &s, errDown, func(int) (bool, error) { return false, errOther }, nil)
		if err != errOther || end != spillway.RetryDone {
			t.Fatalf("err %v, end %v", err, end)
		}
	})
	t.Run("stopped by the retrier", func(t *testing.T) {
		var s spillway.RetryState
		end, err := spillway.Retry(ctx, &countingRetrier{max: 2}, &s, errDown, func(int) (bool, error) { return true, errDown }, nil)
		if err != errDown || end != spillway.RetryStopped || s.Attempts != 2 {
			t.Fatalf("err %v, end %v, attempts %d", err, end, s.Attempts)
		}
	})
	t.Run("a nil retrier never retries", func(t *testing.T) {
		end, err := spillway.Retry(ctx, nil, &spillway.RetryState{}, errDown, nil, nil)
		if err != errDown || end != spillway.RetryDone {
			t.Fatalf("err %v, end %v", err, end)
		}
	})
	t.Run("cut during the backoff by a policy's deadline", func(t *testing.T) {
		total := &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Name: "total"}
		cctx, cancel := context.WithCancelCause(ctx)
		cancel(total)
		end, err := spillway.Retry(cctx, &countingRetrier{max: 5, live: true}, &spillway.RetryState{}, errDown,
			func(int) (bool, error) { t.Fatal("no attempt on a done context"); return false, nil }, nil)
		var e *spillway.Error
		if end != spillway.RetryCut || !errors.As(err, &e) || e.Name != "total" || !errors.Is(err, errDown) || total.Cause != nil {
			t.Fatalf("err %v, end %v: want a copy of the total timeout caused by the last failure", err, end)
		}
	})
	t.Run("cut during the backoff by the caller", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		end, err := spillway.Retry(cctx, &countingRetrier{max: 5, live: true}, &spillway.RetryState{}, errDown, nil, nil)
		if end != spillway.RetryCut || err != context.Canceled {
			t.Fatalf("err %v, end %v", err, end)
		}
	})
}
