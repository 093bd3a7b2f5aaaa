package spillway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

func TestComposeRunsLayersInTheOrderGiven(t *testing.T) {
	gs, log := newGuards("limiter", "breaker")
	obs := spillway.NewChannelObserver(8)
	// The limiter admits the execution once; the breaker sees each attempt.
	pl := spillway.MustCompose(spillway.Composition[int]{
		Layers:   []any{gs[0], &countingRetrier{max: 3}, gs[1]},
		Observer: obs, Name: "c",
	})
	calls := 0
	res := pl.ExecuteResult(context.Background(), func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, errDown
		}
		return 7, nil
	})
	if res.Value != 7 || res.Err != nil || res.Attempts != 3 {
		t.Fatalf("result %+v", res)
	}
	want := "limiter acquire,breaker acquire,breaker release err,breaker acquire,breaker release err," +
		"breaker acquire,breaker release ok,limiter release ok"
	if got := strings.Join(*log, ","); got != want {
		t.Errorf("log = %s\nwant  %s", got, want)
	}
	close(obs.C)
	n := 0
	for e := range obs.C {
		n++
		if e.Kind != spillway.EventAttempt || e.Attempt != n || e.Name != "c" {
			t.Errorf("event %d: %+v", n, e)
		}
	}
	if n != 3 {
		t.Errorf("%d attempt events, want 3", n)
	}
}

func TestComposeFallbackInsideTheRetry(t *testing.T) {
	// A fallback inside the retry serves each failed attempt, so the retry
	// never sees a failure.
	pl := spillway.MustCompose(spillway.Composition[string]{Layers: []any{&countingRetrier{max: 3}, staticFallback{"cached"}}})
	res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) { return "", errDown })
	if res.Value != "cached" || res.Err != nil || res.Attempts != 1 || res.Fallback != "static" || res.Replaced != errDown {
		t.Fatalf("result %+v", res)
	}
}

func TestComposePanicReleasesEveryPermitOnce(t *testing.T) {
	gs, log := newGuards("outer", "inner")
	pl := spillway.MustCompose(spillway.Composition[int]{Layers: []any{gs[0], fixedTimeout(time.Hour), gs[1]}})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the call's panic", r)
			}
		}()
		_ = pl.Run(context.Background(), func(context.Context) error { panic("boom") })
	}()
	want := "outer acquire,inner acquire,inner release panic,outer release panic"
	if got := strings.Join(*log, ","); got != want {
		t.Errorf("log = %s\nwant  %s", got, want)
	}
}

func TestComposeKeyReachesAFallbackAnywhere(t *testing.T) {
	fb := keyFallback{}
	pl := spillway.MustCompose(spillway.Composition[string]{Layers: []any{&countingRetrier{max: 2}, fb}})
	res := spillway.ExecuteKeyed(context.Background(), pl, "item-1", func(context.Context, string) (string, error) { return "", errDown })
	if res.Value != "cached item-1" || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
}

type keyFallback struct{}

func (keyFallback) Fallback(ctx context.Context, err error) (string, string, error) {
	if k, ok := spillway.KeyOf[string](ctx); ok {
		return "cached " + k, "cache", nil
	}
	return "", "", err
}

// fixedTimeout bounds a call with a plain context deadline.
type fixedTimeout time.Duration

func (f fixedTimeout) Start(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(f))
}
func (fixedTimeout) Finish(_ context.Context, err error) error { return err }

// twoRoles is both a Guard and a Timeouter: Compose cannot tell which it is.
type twoRoles struct {
	nopGuard
	fixedTimeout
}

func TestComposeRefusesWhatIsNoLayer(t *testing.T) {
	var typedNil *countingRetrier
	tests := []struct {
		name   string
		layers []any
		want   string
	}{
		{"no layers", nil, "needs at least one layer"},
		{"nil", []any{nopGuard{}, nil}, "Composition.Layers[1] is nil"},
		{"typed nil", []any{typedNil}, "Composition.Layers[0] is nil (*spillway_test.countingRetrier)"},
		{"no role", []any{"catalog"}, "Composition.Layers[0] (string) is none of Fallbacker[int], Timeouter, Retrier, Guard"},
		{"a fallback of another type", []any{staticFallback{"x"}}, "is none of"},
		{"two roles", []any{twoRoles{}}, "plays more than one role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := spillway.Compose(spillway.Composition[int]{Layers: tt.layers})
			if pl != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compose = %v, %v; want an error with %q", pl, err, tt.want)
			}
		})
	}
	// A typed nil Observer would panic when a layer reports an event.
	var nilLog *spillway.ChannelObserver
	_, err := spillway.Compose(spillway.Composition[int]{Layers: []any{nopGuard{}}, Observer: nilLog})
	if err == nil || !strings.Contains(err.Error(), "Composition.Observer is a nil *spillway.ChannelObserver") {
		t.Fatalf("Compose with a typed nil Observer: %v", err)
	}
}
