package timeout_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
	"github.com/spillway-dev/spillway/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBoom = errors.New("boom")

// recorder keeps the events policies report.
type recorder = spillwaytest.Recorder

// waitCtx blocks until its context ends and returns the context's error, as
// a well-behaved downstream call does.
func waitCtx(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     timeout.Config
		wantErr string
	}{
		{"positive duration", timeout.Config{Duration: time.Second}, ""},
		{"one nanosecond", timeout.Config{Name: "x", Duration: 1}, ""},
		{"zero duration is required", timeout.Config{}, "timeout: Duration must be > 0, got 0s"},
		{"negative duration", timeout.Config{Duration: -time.Second}, "timeout: Duration must be > 0, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, err := timeout.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if to.Duration() != tt.cfg.Duration || to.Name() != tt.cfg.Name {
					t.Fatalf("Duration, Name = %v, %q; want %v, %q", to.Duration(), to.Name(), tt.cfg.Duration, tt.cfg.Name)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New error = %v, want %q", err, tt.wantErr)
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
	timeout.MustNew(timeout.Config{})
}

func TestErrTimeoutMatchesDeadlineExceeded(t *testing.T) {
	if !errors.Is(timeout.ErrTimeout, context.DeadlineExceeded) {
		t.Fatal("errors.Is(ErrTimeout, context.DeadlineExceeded) = false")
	}
	if errors.Is(context.DeadlineExceeded, timeout.ErrTimeout) {
		t.Fatal("a context deadline must not look like our timeout")
	}
	var te interface{ Timeout() bool }
	if !errors.As(timeout.ErrTimeout, &te) || !te.Timeout() {
		t.Fatal("ErrTimeout should report Timeout() == true")
	}
}

// TestWhoseDeadline is the heart of the package: whose deadline ended the
// call decides the error.
func TestWhoseDeadline(t *testing.T) {
	tests := []struct {
		name string
		// parent derives the caller's context; it returns a cancel func.
		parent    func(context.Context) (context.Context, context.CancelFunc)
		limit     time.Duration
		fn        func(context.Context) error
		wantOurs  bool
		wantErr   error // matched with errors.Is
		wantTook  time.Duration
		wantCause error // our error's Cause, when ours
	}{
		{
			name:      "our deadline, caller has none",
			parent:    context.WithCancel,
			limit:     time.Second,
			fn:        waitCtx,
			wantOurs:  true,
			wantErr:   context.DeadlineExceeded,
			wantTook:  time.Second,
			wantCause: context.DeadlineExceeded,
		},
		{
			name: "our deadline, caller's is later",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 10*time.Second)
			},
			limit:     time.Second,
			fn:        waitCtx,
			wantOurs:  true,
			wantErr:   context.DeadlineExceeded,
			wantTook:  time.Second,
			wantCause: context.DeadlineExceeded,
		},
		{
			name: "caller's earlier deadline wins and stays the caller's",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, time.Second)
			},
			limit:    10 * time.Second,
			fn:       waitCtx,
			wantErr:  context.DeadlineExceeded,
			wantTook: time.Second,
		},
		{
			name: "caller's cancellation stays the caller's",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			},
			limit:    time.Second,
			fn:       waitCtx,
			wantErr:  context.Canceled,
			wantTook: 300 * time.Millisecond,
		},
		{
			name:   "fast failure is returned unchanged",
			parent: context.WithCancel,
			limit:  time.Second,
			fn:     func(context.Context) error { return errBoom },
			// errBoom itself, checked below by identity.
			wantErr: errBoom,
		},
		{
			name:   "a call that ignores its context and fails late is still our timeout",
			parent: context.WithCancel,
			limit:  time.Second,
			fn: func(context.Context) error {
				time.Sleep(2 * time.Second)
				return errBoom
			},
			wantOurs:  true,
			wantErr:   errBoom,
			wantTook:  2 * time.Second,
			wantCause: errBoom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				to := timeout.MustNew(timeout.Config{Name: "api", Duration: tt.limit, Observer: rec})
				ctx, cancel := tt.parent(t.Context())
				defer cancel()
				start := time.Now()
				err := to.Run(ctx, tt.fn)
				if took := time.Since(start); took != tt.wantTook {
					t.Errorf("Run took %v, want %v", took, tt.wantTook)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Run = %v, want errors.Is %v", err, tt.wantErr)
				}
				if got := errors.Is(err, timeout.ErrTimeout); got != tt.wantOurs {
					t.Fatalf("errors.Is(err, ErrTimeout) = %v, want %v (err %v)", got, tt.wantOurs, err)
				}
				events := rec.Events()
				if !tt.wantOurs {
					if err != tt.wantErr {
						t.Errorf("Run = %#v, want %#v itself", err, tt.wantErr)
					}
					if len(events) != 0 {
						t.Errorf("events = %v, want none", events)
					}
					return
				}
				var e *spillway.Error
				if !errors.As(err, &e) {
					t.Fatalf("Run = %T, want *spillway.Error", err)
				}
				want := spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Name: "api",
					Err: timeout.ErrTimeout, Cause: tt.wantCause}
				if *e != want {
					t.Errorf("error = %+v, want %+v", *e, want)
				}
				if r := spillway.ReasonOf(err); r != spillway.ReasonDeadlineExceeded {
					t.Errorf("ReasonOf = %q", r)
				}
				if spillway.IsRejection(err) {
					t.Error("a timeout is not a rejection")
				}
				wantEv := spillway.Event{Kind: spillway.EventTimeout, Policy: "timeout", Name: "api", Duration: tt.limit}
				if len(events) != 1 || events[0] != wantEv {
					t.Errorf("events = %+v, want [%+v]", events, wantEv)
				}
			})
		})
	}
}

func TestSuccessIsNeverATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		to := timeout.MustNew(timeout.Config{Duration: time.Second, Observer: rec})
		if err := to.Run(t.Context(), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("fast call: %v", err)
		}
		// A call that ignores its context and succeeds late still made it.
		late := func(context.Context) error { time.Sleep(3 * time.Second); return nil }
		if err := to.Run(t.Context(), late); err != nil {
			t.Fatalf("late success: %v", err)
		}
		if ev := rec.Events(); len(ev) != 0 {
			t.Fatalf("events = %v, want none", ev)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := timeout.MustNew(timeout.Config{Name: "catalog", Duration: time.Second})
		err := to.Run(t.Context(), waitCtx)
		const want = `spillway: timeout "catalog": timeout exceeded: context deadline exceeded`
		if err.Error() != want {
			t.Fatalf("message = %q, want %q", err.Error(), want)
		}
	})
}

func TestFinishIsIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		to := timeout.MustNew(timeout.Config{Name: "total", Duration: time.Second, Observer: rec})
		ctx, cancel := to.Start(t.Context())
		defer cancel()
		<-ctx.Done()

		first := to.Finish(ctx, ctx.Err())
		if again := to.Finish(ctx, first); again != first {
			t.Fatalf("second Finish = %v, want the first error itself", again)
		}

		// context.Cause is what spillway.Sleep returns when the deadline
		// ends a backoff: it must come out as the proper timeout error.
		cause := context.Cause(ctx)
		got := to.Finish(ctx, cause)
		var e *spillway.Error
		if !errors.As(got, &e) || e.Err != timeout.ErrTimeout || e.Name != "total" || e.Cause != nil {
			t.Fatalf("Finish(cause) = %#v, want the timeout error", got)
		}
		if !errors.Is(got, context.DeadlineExceeded) || spillway.ReasonOf(got) != spillway.ReasonDeadlineExceeded {
			t.Fatalf("Finish(cause) = %v: not a deadline", got)
		}

		// spillway.Pipeline attaches the last attempt's error to a copy of
		// the cause; that copy is ours too.
		withLast := *cause.(*spillway.Error)
		withLast.Cause = errBoom
		if got := to.Finish(ctx, &withLast); got != error(&withLast) {
			t.Fatalf("Finish(copy of cause) = %v, want it unchanged", got)
		}
		if n := len(rec.Events()); n != 4 {
			t.Fatalf("events = %d, want one per Finish that saw our deadline (4)", n)
		}
	})
}

func TestFinishLeavesOtherErrorsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := timeout.MustNew(timeout.Config{Duration: time.Second})
		ctx, cancel := to.Start(t.Context())
		if got := to.Finish(ctx, errBoom); got != errBoom {
			t.Fatalf("before the deadline Finish = %v, want errBoom", got)
		}
		cancel()
		if got := to.Finish(ctx, context.Canceled); got != context.Canceled {
			t.Fatalf("after cancel Finish = %v, want context.Canceled", got)
		}
		if got := to.Finish(ctx, nil); got != nil {
			t.Fatalf("Finish(nil) = %v", got)
		}
	})
}

// TestNestedTimeouts checks that the innermost deadline to expire owns the
// error, as in a pipeline's attempt timeout under its total timeout.
func TestNestedTimeouts(t *testing.T) {
	tests := []struct {
		name           string
		outer, inner   time.Duration
		wantName       string
		wantInnerError error
	}{
		{"inner expires first", 3 * time.Second, time.Second, "inner", nil},
		{"outer expires first", time.Second, 3 * time.Second, "outer", context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				outer := timeout.MustNew(timeout.Config{Name: "outer", Duration: tt.outer})
				inner := timeout.MustNew(timeout.Config{Name: "inner", Duration: tt.inner})
				var innerErr error
				err := outer.Run(t.Context(), func(ctx context.Context) error {
					innerErr = inner.Run(ctx, waitCtx)
					return innerErr
				})
				var e *spillway.Error
				if !errors.As(err, &e) || e.Name != tt.wantName {
					t.Fatalf("err = %v, want the %s timeout's", err, tt.wantName)
				}
				if tt.wantInnerError != nil && innerErr != tt.wantInnerError {
					t.Fatalf("inner Run = %v, want the outer deadline's %v unchanged", innerErr, tt.wantInnerError)
				}
			})
		})
	}
}

// scriptedRetry retries every failure after a long delay.
type scriptedRetry struct{ delay time.Duration }

func (r scriptedRetry) Begin() spillway.RetryState { return spillway.RetryState{} }
func (r scriptedRetry) Next(_ context.Context, s spillway.RetryState, _ error) (spillway.RetryState, time.Duration, error) {
	return s, r.delay, nil
}

func TestPipelineTotalTimeoutDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		total := timeout.MustNew(timeout.Config{Name: "total", Duration: time.Second, Observer: rec})
		pl := spillway.MustNewPipeline(spillway.Policies[int]{Total: total, Retry: scriptedRetry{delay: 10 * time.Second}})
		start := time.Now()
		_, err := pl.Execute(t.Context(), func(context.Context) (int, error) { return 0, errBoom })
		if took := time.Since(start); took != time.Second {
			t.Errorf("took %v, want the total timeout (1s)", took)
		}
		var e *spillway.Error
		if !errors.As(err, &e) || e.Err != timeout.ErrTimeout || e.Name != "total" {
			t.Fatalf("err = %v, want the total timeout's", err)
		}
		if !errors.Is(err, errBoom) {
			t.Errorf("err = %v, want the last attempt's error as its cause", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
			t.Errorf("err = %v: not a deadline", err)
		}
		if n := len(rec.Events()); n != 1 {
			t.Errorf("events = %d, want 1", n)
		}
	})
}

func TestPipelineAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: time.Second})
		pl := spillway.MustNewPipeline(spillway.Policies[int]{Attempt: attempt})
		_, err := pl.Execute(t.Context(), func(ctx context.Context) (int, error) { return 0, waitCtx(ctx) })
		if !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("err = %v, want the attempt timeout", err)
		}
	})
}

func TestSetDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := timeout.MustNew(timeout.Config{Duration: time.Second})
		if err := to.SetDuration(0); err == nil || !strings.Contains(err.Error(), "Duration") {
			t.Fatalf("SetDuration(0) = %v, want an error naming Duration", err)
		}
		if to.Duration() != time.Second {
			t.Fatalf("a rejected SetDuration changed Duration to %v", to.Duration())
		}
		if err := to.SetDuration(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := to.Run(t.Context(), waitCtx); !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("Run = %v", err)
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Fatalf("Run took %v, want the new Duration 5s", took)
		}
	})
}

func TestSetDurationConcurrentWithCalls(t *testing.T) {
	to := timeout.MustNew(timeout.Config{Duration: time.Hour})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				if i == 0 {
					_ = to.SetDuration(time.Duration(j+1) * time.Hour)
					continue
				}
				if err := to.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := timeout.MustNew(timeout.Config{Duration: time.Second})
		v, err := timeout.Do(t.Context(), to, func(context.Context) (string, error) { return "ok", nil })
		if v != "ok" || err != nil {
			t.Fatalf("Do = %q, %v", v, err)
		}
		_, err = timeout.Do(t.Context(), to, func(ctx context.Context) (string, error) { return "", waitCtx(ctx) })
		if !errors.Is(err, timeout.ErrTimeout) {
			t.Fatalf("Do = %v, want a timeout", err)
		}
	})
}

func TestRunCancelsItsContextOnPanic(t *testing.T) {
	to := timeout.MustNew(timeout.Config{Duration: time.Hour})
	var seen context.Context
	func() {
		defer func() { _ = recover() }()
		_ = to.Run(context.Background(), func(ctx context.Context) error {
			seen = ctx
			panic("boom")
		})
	}()
	if seen.Err() == nil {
		t.Fatal("the derived context outlived a panicking call")
	}
}

func FuzzConfig(f *testing.F) {
	f.Add("", int64(0))
	f.Add("api", int64(time.Second))
	f.Add("x", int64(-1))
	f.Add("big", int64(1<<62))
	f.Fuzz(func(t *testing.T, name string, d int64) {
		cfg := timeout.Config{Name: name, Duration: time.Duration(d)}
		to, err := timeout.New(cfg)
		if d <= 0 {
			if err == nil || !strings.Contains(err.Error(), "Duration") {
				t.Fatalf("New(%+v) = %v, want an error naming Duration", cfg, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("New(%+v): %v", cfg, err)
		}
		if to.Duration() != cfg.Duration || to.Name() != name {
			t.Fatalf("got %v %q, want %v %q", to.Duration(), to.Name(), cfg.Duration, name)
		}
		if err := to.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestErrorTextOnce: a call that returns its context's cause, as net/http
// does (a *url.Error around context.Cause), or that cause itself, gets an
// error that says "timeout exceeded" once. The text used to repeat the
// timeout: `spillway: timeout "attempt": timeout exceeded: Get "…":
// spillway: timeout "attempt": timeout exceeded`.
func TestErrorTextOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := timeout.MustNew(timeout.Config{Name: "attempt", Duration: time.Second})
		for _, tt := range []struct {
			name string
			call func(ctx context.Context) error
			want string
		}{
			{"url error", func(ctx context.Context) error {
				<-ctx.Done()
				return &url.Error{Op: "Get", URL: "http://catalog/items", Err: context.Cause(ctx)}
			}, `Get "http://catalog/items": spillway: timeout "attempt": timeout exceeded`},
			{"the cause", func(ctx context.Context) error {
				<-ctx.Done()
				return context.Cause(ctx)
			}, `spillway: timeout "attempt": timeout exceeded`},
			{"context error", waitCtx, `spillway: timeout "attempt": timeout exceeded: context deadline exceeded`},
		} {
			err := to.Run(context.Background(), tt.call)
			if err.Error() != tt.want {
				t.Errorf("%s: Error() = %q, want %q", tt.name, err, tt.want)
			}
			if !errors.Is(err, timeout.ErrTimeout) || spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
				t.Errorf("%s: %v is not our timeout", tt.name, err)
			}
		}
	})
}

// TestErrorTextOnceThroughNetHTTP is TestErrorTextOnce's first case with a
// real HTTP client, whose error wraps the context's cause.
func TestErrorTextOnceThroughNetHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	to := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 20 * time.Millisecond})
	err := to.Run(context.Background(), func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			return err
		}
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	want := `Get "` + srv.URL + `": spillway: timeout "attempt": timeout exceeded`
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}
}
