package spillway_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway"
)

func TestPipelineClassifier(t *testing.T) {
	errRetry := errors.New("status 503")
	errNotFound := errors.New("not found")
	classify := func(v int) error {
		if v == 503 {
			return errRetry
		}
		return nil
	}
	tests := []struct {
		name         string
		results      []int // 503 fails by value, 404 returns errNotFound, others succeed
		wantValue    int
		wantErr      error
		wantAttempts int
		wantLog      string
	}{
		{"a failing value is retried", []int{503, 200}, 200, nil, 2,
			"g acquire,g release err,g acquire,g release ok"},
		{"the last failing value stands, with the classifier's error", []int{503, 503, 503}, 503, errRetry, 3,
			"g acquire,g release err,g acquire,g release err,g acquire,g release err"},
		{"an error is judged as without a classifier: counted and retried", []int{404, 200}, 200, nil, 2,
			"g acquire,g release err,g acquire,g release ok"},
		{"an error after failing values ends the execution as it is", []int{503, 503, 404}, 0, errNotFound, 3,
			"g acquire,g release err,g acquire,g release err,g acquire,g release err"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, log := newGuards("g")
			pl := spillway.MustNewPipeline(spillway.Policies[int]{Retry: &countingRetrier{max: 3}, Breaker: gs[0], Classify: classify})
			results := tt.results
			res := pl.ExecuteResult(context.Background(), func(context.Context) (int, error) {
				r := results[0]
				results = results[1:]
				if r == 404 {
					return 0, errNotFound
				}
				return r, nil
			})
			if res.Value != tt.wantValue || !errors.Is(res.Err, tt.wantErr) || (tt.wantErr == nil) != (res.Err == nil) || res.Attempts != tt.wantAttempts {
				t.Errorf("result %+v, want value %d, err %v, %d attempts", res, tt.wantValue, tt.wantErr, tt.wantAttempts)
			}
			if got := strings.Join(*log, ","); got != tt.wantLog {
				t.Errorf("log = %s\nwant  %s", got, tt.wantLog)
			}
		})
	}
}

func TestResultReplacedIsTheErrorTheFallbackReplaced(t *testing.T) {
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: staticFallback{"cached"}})
	res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) { return "", errDown })
	if res.Value != "cached" || res.Err != nil || res.Replaced != errDown {
		t.Fatalf("result %+v, want Replaced = %v", res, errDown)
	}
	res = pl.ExecuteResult(context.Background(), func(context.Context) (string, error) { return "fresh", nil })
	if res.Replaced != nil || res.Fallback != "" {
		t.Fatalf("result %+v: a call that served replaced nothing", res)
	}
}

func TestKeyOfWithoutExecuteKeyed(t *testing.T) {
	if k, ok := spillway.KeyOf[string](context.Background()); ok || k != "" {
		t.Fatalf("KeyOf = %q, %v on a context without a key", k, ok)
	}
}

func TestExecuteVariantsAllocateNothingOnSuccess(t *testing.T) {
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Fallback: intFallback{}, Retry: nopRetrier{}, Breaker: nopGuard{}, Bulkhead: nopGuard{}})
	ctx := context.Background()
	attempt := func(_ context.Context, a spillway.AttemptInfo) (int, error) { return a.Attempt, nil }
	keyed := func(_ context.Context, k string) (int, error) { return len(k), nil }
	for name, run := range map[string]func(){
		"ExecuteAttempt": func() { _ = pl.ExecuteAttempt(ctx, attempt) },
		"ExecuteKeyed":   func() { _ = spillway.ExecuteKeyed(ctx, pl, "item-1", keyed) },
	} {
		if n := testing.AllocsPerRun(1000, run); n != 0 {
			t.Errorf("%s allocates %v times per successful call, want 0", name, n)
		}
	}
}

func TestHooksCallTheHookOfEachEvent(t *testing.T) {
	var got []string
	hook := func(name string) func(spillway.Event) { return func(spillway.Event) { got = append(got, name) } }
	h := &spillway.Hooks{OnAttempt: hook("attempt"), OnRetry: hook("retry"), OnTransition: hook("transition"),
		OnOpen: hook("open"), OnHalfOpen: hook("half-open"), OnClose: hook("close"), OnRejection: hook("rejection"),
		OnFull: hook("full"), OnBudgetExhausted: hook("budget"), OnFallback: hook("fallback"), OnTimeout: hook("timeout")}
	for _, e := range []spillway.Event{
		{Kind: spillway.EventAttempt}, {Kind: spillway.EventRetry},
		{Kind: spillway.EventTransition, To: "open"}, {Kind: spillway.EventTransition, To: "forced_open"},
		{Kind: spillway.EventTransition, To: "half_open"}, {Kind: spillway.EventTransition, To: "closed"},
		{Kind: spillway.EventTransition, To: "disabled"},
		{Kind: spillway.EventRejection, Reason: spillway.ReasonBulkheadFull},
		{Kind: spillway.EventRejection, Reason: spillway.ReasonBudgetExhausted},
		{Kind: spillway.EventRejection, Reason: spillway.ReasonBreakerOpen},
		{Kind: spillway.EventFallback}, {Kind: spillway.EventTimeout},
	} {
		h.Observe(e)
	}
	want := "attempt retry transition open transition open transition half-open transition close transition " +
		"rejection full rejection budget rejection fallback timeout"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("hooks called: %s\nwant          %s", s, want)
	}
	(&spillway.Hooks{}).Observe(spillway.Event{Kind: spillway.EventAttempt}) // nil hooks are skipped
}
