package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errBoom     = errors.New("boom")
	errNotFound = errors.New("not found")
	errFull     = &spillway.Error{Code: spillway.ReasonBulkheadFull, Policy: "bulkhead", Err: errors.New("bulkhead full")}
	errOpen     = &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Err: errors.New("circuit open"),
		RetryAfter: 30 * time.Second}
)

// recorder keeps the events policies report.
type recorder = spillwaytest.Recorder

// trace records which steps ran.
type trace struct{ ran []string }

// step returns a step that records its run and serves v, or fails with err.
func (tr *trace) step(name string, v string, err error) fallback.Step[string] {
	return fallback.Func(name, func(context.Context, error) (string, error) {
		tr.ran = append(tr.ran, name)
		return v, err
	})
}

func TestValidate(t *testing.T) {
	ok := func(context.Context, error) (int, error) { return 0, nil }
	tests := []struct {
		name    string
		steps   []fallback.Step[int]
		wantErr string
	}{
		{"one step", []fallback.Step[int]{fallback.Func("a", ok)}, ""},
		{"a chain", []fallback.Step[int]{fallback.Func("a", ok), fallback.Value("b", 1)}, ""},
		{"no steps", nil, "fallback: at least one Step is required"},
		{"no name", []fallback.Step[int]{fallback.Func("a", ok), fallback.Func("", ok)}, "fallback: step 1: Name must not be empty"},
		{"no Fn", []fallback.Step[int]{{Name: "a"}}, `fallback: step 0 ("a"): Fn must not be nil`},
		{"duplicate name", []fallback.Step[int]{fallback.Func("a", ok), fallback.Value("b", 1), fallback.Value("a", 2)},
			`fallback: step 2: Name "a" is already step 0's`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fallback.Validate(tt.steps...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
			if f, nerr := fallback.New(fallback.Config{Name: "x"}, tt.steps...); f != nil || nerr == nil || nerr.Error() != err.Error() {
				t.Fatalf("New = %v, %v, want nil and Validate's error", f, nerr)
			}
			defer func() {
				if r := recover(); fmt.Sprint(r) != err.Error() {
					t.Fatalf("MustNew panicked with %v, want Validate's error", r)
				}
			}()
			fallback.MustNew(fallback.Config{Name: "x"}, tt.steps...)
			t.Fatal("MustNew did not panic")
		})
	}
}

func TestStepsAreTriedInOrder(t *testing.T) {
	tests := []struct {
		name       string
		results    []error // one step per entry; nil serves
		wantServed string
		wantRan    []string
	}{
		{"first serves", []error{nil, nil}, "s0", []string{"s0"}},
		{"a failure passes on", []error{errBoom, nil, nil}, "s1", []string{"s0", "s1"}},
		{"the last one serves", []error{errBoom, errBoom, nil}, "s2", []string{"s0", "s1", "s2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &trace{}
			var steps []fallback.Step[string]
			for i, r := range tt.results {
				name := fmt.Sprintf("s%d", i)
				steps = append(steps, tr.step(name, "from "+name, r))
			}
			v, served, err := fallback.MustNew(fallback.Config{}, steps...).Fallback(t.Context(), errBoom)
			if err != nil || served != tt.wantServed || v != "from "+tt.wantServed {
				t.Fatalf("Fallback = %q, %q, %v; want %q served", v, served, err, tt.wantServed)
			}
			if !slices.Equal(tr.ran, tt.wantRan) {
				t.Fatalf("ran %v, want %v", tr.ran, tt.wantRan)
			}
		})
	}
}

func TestWhenSelectsTheErrors(t *testing.T) {
	tr := &trace{}
	stale := tr.step("stale-cache", "stale", nil)
	stale.When = fallback.OnReasons(spillway.ReasonBreakerOpen, spillway.ReasonBulkheadFull)
	notFound := tr.step("empty", "", nil)
	notFound.When = func(err error) bool { return errors.Is(err, errNotFound) }
	f := fallback.MustNew(fallback.Config{}, stale, notFound, fallback.Value("static", "default"))

	tests := []struct {
		err        error
		wantServed string
	}{
		{errOpen, "stale-cache"},
		{fmt.Errorf("call: %w", errFull), "stale-cache"},
		{fmt.Errorf("lookup: %w", errNotFound), "empty"},
		{errBoom, "static"},
	}
	for _, tt := range tests {
		_, served, err := f.Fallback(t.Context(), tt.err)
		if err != nil || served != tt.wantServed {
			t.Errorf("Fallback(%v) served %q (err %v), want %q", tt.err, served, err, tt.wantServed)
		}
	}
}

func TestValueServesAStaticValue(t *testing.T) {
	type page struct{ Items []string }
	f := fallback.MustNew(fallback.Config{}, fallback.Value("static", page{Items: []string{"default"}}))
	v, served, err := f.Fallback(t.Context(), errBoom)
	if err != nil || served != "static" || len(v.Items) != 1 || v.Items[0] != "default" {
		t.Fatalf("Fallback = %+v, %q, %v", v, served, err)
	}
}

func TestStepSeesTheErrorItReplaces(t *testing.T) {
	var seen error
	f := fallback.MustNew(fallback.Config{}, fallback.Func("echo", func(_ context.Context, err error) (string, error) {
		seen = err
		return err.Error(), nil
	}))
	if v, _, _ := f.Fallback(t.Context(), errBoom); v != "boom" || seen != errBoom {
		t.Fatalf("step saw %v and served %q", seen, v)
	}
}

func TestExhaustedChainKeepsTheOriginalError(t *testing.T) {
	tr := &trace{}
	// The steps fail in ways that would change the reason if they leaked.
	f := fallback.MustNew(fallback.Config{},
		tr.step("replica", "", errOpen),
		tr.step("cache", "", context.DeadlineExceeded),
		tr.step("static", "", errNotFound),
	)
	original := fmt.Errorf("catalog: %w", errFull)
	v, served, err := f.Fallback(t.Context(), original)
	if v != "" || served != "" {
		t.Fatalf("served %q = %q", served, v)
	}
	if !errors.Is(err, original) || !errors.Is(err, errFull) || !errors.Is(err, fallback.ErrExhausted) {
		t.Fatalf("err = %v: want it to match the original and ErrExhausted", err)
	}
	if r := spillway.ReasonOf(err); r != spillway.ReasonBulkheadFull {
		t.Fatalf("ReasonOf = %q, want the original's bulkhead_full", r)
	}
	if !spillway.IsRejection(err) {
		t.Fatal("IsRejection lost the original rejection")
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errNotFound) || errors.Is(err, errOpen) {
		t.Fatal("a step's error leaked into errors.Is")
	}
	if d, ok := spillway.RetryAfterOf(err); ok {
		t.Fatalf("RetryAfterOf = %v: the replica step's hint leaked", d)
	}
	var ex *fallback.ExhaustedError
	if !errors.As(err, &ex) || ex.Err != original {
		t.Fatalf("errors.As(*ExhaustedError) = %v", err)
	}
	want := []fallback.StepError{{"replica", errOpen}, {"cache", context.DeadlineExceeded}, {"static", errNotFound}}
	if !slices.Equal(ex.Failed, want) {
		t.Fatalf("Failed = %v, want %v", ex.Failed, want)
	}
	const msg = `catalog: spillway: bulkhead: bulkhead full (fallback failed: "replica": spillway: breaker: circuit open (retry after 30s); "cache": context deadline exceeded; "static": not found)`
	if err.Error() != msg {
		t.Fatalf("message = %q\nwant      %q", err.Error(), msg)
	}
	if !slices.Equal(tr.ran, []string{"replica", "cache", "static"}) {
		t.Fatalf("ran %v", tr.ran)
	}
}

func TestExhaustedKeepsTheOriginalRetryAfter(t *testing.T) {
	f := fallback.MustNew(fallback.Config{}, fallback.Func("replica", func(context.Context, error) (int, error) { return 0, errBoom }))
	_, _, err := f.Fallback(t.Context(), errOpen)
	if d, ok := spillway.RetryAfterOf(err); !ok || d != 30*time.Second {
		t.Fatalf("RetryAfterOf = %v, %v; want the open breaker's 30s", d, ok)
	}
}

func TestNoApplicableStepReturnsTheErrorUnchanged(t *testing.T) {
	tr := &trace{}
	s := tr.step("stale", "x", nil)
	s.When = fallback.OnReasons(spillway.ReasonBreakerOpen)
	_, served, err := fallback.MustNew(fallback.Config{}, s).Fallback(t.Context(), errBoom)
	if served != "" || err != errBoom {
		t.Fatalf("Fallback = %q, %v; want errBoom itself", served, err)
	}
	if len(tr.ran) != 0 || errors.Is(err, fallback.ErrExhausted) {
		t.Fatal("no step applied, yet one ran or the error says exhausted")
	}
}

func TestCallerGoneNeverFallsBack(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	timeoutErr := &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Err: context.DeadlineExceeded}

	tests := []struct {
		name         string
		ctx          context.Context
		err          error
		wantFallback bool
	}{
		{"caller canceled", canceled, errBoom, false},
		{"caller's deadline passed", expired, timeoutErr, false},
		{"error is the caller's cancellation", context.Background(), context.Canceled, false},
		{"wrapped cancellation", context.Background(), fmt.Errorf("GET /x: %w", context.Canceled), false},
		{"a downstream deadline falls back", context.Background(), context.DeadlineExceeded, true},
		{"our timeout falls back", context.Background(), timeoutErr, true},
		{"an upstream error falls back", context.Background(), errBoom, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &trace{}
			rec := &recorder{}
			f := fallback.MustNew(fallback.Config{Observer: rec}, tr.step("static", "x", nil))
			_, served, ferr := f.Fallback(tt.ctx, tt.err)
			if tt.wantFallback {
				if served != "static" || ferr != nil {
					t.Fatalf("Fallback = %q, %v; want static served", served, ferr)
				}
				return
			}
			if served != "" || ferr != tt.err || len(tr.ran) != 0 || len(rec.Events()) != 0 {
				t.Fatalf("Fallback = %q, %v (ran %v); want the error unchanged and no step run", served, ferr, tr.ran)
			}
		})
	}
}

func TestCallerLeavingMidChainStopsIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &trace{}
	leave := fallback.Func("replica", func(context.Context, error) (string, error) {
		tr.ran = append(tr.ran, "replica")
		cancel()
		return "", context.Canceled
	})
	_, served, err := fallback.MustNew(fallback.Config{}, leave, tr.step("static", "x", nil)).Fallback(ctx, errBoom)
	if served != "" || !errors.Is(err, errBoom) || !slices.Equal(tr.ran, []string{"replica"}) {
		t.Fatalf("Fallback = %q, %v (ran %v); want the chain to stop", served, err, tr.ran)
	}
	if spillway.ReasonOf(err) != spillway.ReasonUpstreamError {
		t.Fatalf("ReasonOf = %q, want the original's", spillway.ReasonOf(err))
	}
}

func TestNilErrorIsNotReplaced(t *testing.T) {
	tr := &trace{}
	v, served, err := fallback.MustNew(fallback.Config{}, tr.step("static", "x", nil)).Fallback(t.Context(), nil)
	if v != "" || served != "" || err != nil || len(tr.ran) != 0 {
		t.Fatalf("Fallback(nil) = %q, %q, %v", v, served, err)
	}
}

func TestObserverSeesWhoServed(t *testing.T) {
	rec := &recorder{}
	tr := &trace{}
	f := fallback.MustNew(fallback.Config{Name: "catalog", Observer: rec},
		tr.step("replica", "", errBoom), tr.step("static", "x", nil))
	if _, _, err := f.Fallback(t.Context(), errOpen); err != nil {
		t.Fatal(err)
	}
	want := spillway.Event{Kind: spillway.EventFallback, Policy: "fallback", Name: "catalog", Fallback: "static", Err: errOpen}
	if ev := rec.Events(); len(ev) != 1 || ev[0] != want {
		t.Fatalf("events = %+v, want [%+v]", ev, want)
	}
}

func TestDo(t *testing.T) {
	tr := &trace{}
	f := fallback.MustNew(fallback.Config{}, tr.step("static", "default", nil))
	tests := []struct {
		name       string
		fn         func(context.Context) (string, error)
		wantV      string
		wantServed string
	}{
		{"success is the call's own", func(context.Context) (string, error) { return "fresh", nil }, "fresh", ""},
		{"failure falls back", func(context.Context) (string, error) { return "partial", errBoom }, "default", "static"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, served, err := fallback.Do(t.Context(), f, tt.fn)
			if v != tt.wantV || served != tt.wantServed || err != nil {
				t.Fatalf("Do = %q, %q, %v; want %q, %q", v, served, err, tt.wantV, tt.wantServed)
			}
		})
	}
}

func TestPipelineFallback(t *testing.T) {
	f := fallback.MustNew(fallback.Config{}, fallback.Value("static", 42))
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Fallback: f})
	res := pl.ExecuteResult(t.Context(), func(context.Context) (int, error) { return 0, errBoom })
	if res.Value != 42 || res.Fallback != "static" || res.Err != nil {
		t.Fatalf("ExecuteResult = %+v", res)
	}
}

func TestOnReasonsKeepsItsOwnCopy(t *testing.T) {
	reasons := []spillway.Reason{spillway.ReasonBreakerOpen}
	when := fallback.OnReasons(reasons...)
	reasons[0] = spillway.ReasonThrottled
	if !when(errOpen) {
		t.Fatal("OnReasons changed when its argument slice did")
	}
}
