package breaker

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// TestUpdateKeepsWhatItDoesNotName: Update changes one field and keeps the
// others, the state and the open deadline; Reconfigure with the same
// partial Config resets what it leaves out (the trap Update avoids).
func TestUpdateKeepsWhatItDoesNotName(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	b := MustNew(Config{Name: "payments", MinCalls: 4, OpenFor: time.Minute, Clock: clock})
	if err := b.TransitionTo(Open); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(c *Config) { c.FailureRate = 0.3 }); err != nil {
		t.Fatal(err)
	}
	got := b.Config()
	if got.Name != "payments" || got.MinCalls != 4 || got.OpenFor != time.Minute || got.FailureRate != 0.3 {
		t.Errorf("after Update: Name %q MinCalls %d OpenFor %v FailureRate %v, want payments 4 1m0s 0.3",
			got.Name, got.MinCalls, got.OpenFor, got.FailureRate)
	}
	if s := b.Snapshot(); s.State != Open || s.RetryAfter != time.Minute {
		t.Errorf("after Update: %v, retry after %v; want open, 1m0s", s.State, s.RetryAfter)
	}
	_, err := b.Acquire(t.Context())
	if e, ok := errors.AsType[*spillway.Error](err); !ok || e.Name != "payments" {
		t.Errorf("rejection after Update = %v, want one named payments", err)
	}

	if err := b.Reconfigure(Config{FailureRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	if got := b.Config(); got.Name != "" || got.MinCalls != defaultMinCalls || got.OpenFor != defaultOpenFor {
		t.Errorf("Reconfigure of a partial Config kept %q %d %v: it is documented to reset them", got.Name, got.MinCalls, got.OpenFor)
	}
}

// TestUpdateMaxOpenForFollowsOpenFor: a MaxOpenFor left at its default is
// derived again from a new OpenFor; an explicit one stays.
func TestUpdateMaxOpenForFollowsOpenFor(t *testing.T) {
	b := MustNew(Config{})
	if err := b.Update(func(c *Config) { c.OpenFor = 10 * time.Minute }); err != nil {
		t.Fatalf("Update(OpenFor 10m) with the default MaxOpenFor: %v", err)
	}
	if got := b.Config().MaxOpenFor; got != 10*time.Minute {
		t.Errorf("MaxOpenFor = %v, want 10m0s (the default follows OpenFor)", got)
	}
	b = MustNew(Config{MaxOpenFor: time.Hour})
	if err := b.Update(func(c *Config) { c.OpenFor = time.Minute }); err != nil {
		t.Fatal(err)
	}
	if got := b.Config().MaxOpenFor; got != time.Hour {
		t.Errorf("MaxOpenFor = %v, want the explicit 1h0m0s", got)
	}
}

// TestUpdateInvalidChangesNothing: an invalid result is refused whole.
func TestUpdateInvalidChangesNothing(t *testing.T) {
	b := MustNew(Config{Name: "x", MinCalls: 7})
	err := b.Update(func(c *Config) { c.MinCalls = 9; c.FailureRate = 2 })
	if err == nil || !strings.Contains(err.Error(), "FailureRate") {
		t.Fatalf("Update(FailureRate 2) = %v, want an error naming FailureRate", err)
	}
	if got := b.Config(); got.MinCalls != 7 || got.FailureRate != defaultFailureRate {
		t.Errorf("a refused Update changed the config: MinCalls %d FailureRate %v", got.MinCalls, got.FailureRate)
	}
}

// TestConcurrentUpdatesLoseNothing: Updates are read-modify-write under one
// lock, so each one's change survives the others.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	b := MustNew(Config{MinCalls: 1000})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := b.Update(func(c *Config) { c.MinCalls++ }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := b.Config().MinCalls; got != 1050 {
		t.Errorf("MinCalls = %d after 50 increments from 1000, want 1050", got)
	}
}

// TestUnknownStateError lists the valid states and suggests the near one.
func TestUnknownStateError(t *testing.T) {
	const valid = "want one of closed, open, half_open, forced_open, disabled, metrics_only"
	for in, want := range map[string]string{
		"closd":     `breaker: unknown state "closd" (did you mean "closed"?): ` + valid,
		"Half-Open": `breaker: unknown state "Half-Open" (did you mean "half_open"?): ` + valid,
		"ajar":      `breaker: unknown state "ajar": ` + valid,
	} {
		var s State
		if err := s.UnmarshalText([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("UnmarshalText(%q) = %v, want %s", in, err, want)
		}
	}
}

// TestAttachedObserverOutlivesReconfigure: attached observers (a
// pipeline's) get the transitions in order, outside the lock, once even
// when they are in Config.Observer too, and keep getting them after a
// Reconfigure that drops Config.Observer, whose own observers stop.
func TestAttachedObserverOutlivesReconfigure(t *testing.T) {
	b := MustNew(Config{Name: "payments"})
	dropped, both, attached := &eventLog{t: t, b: b}, &eventLog{t: t, b: b}, &eventLog{t: t, b: b}
	if err := b.Update(func(c *Config) { c.Observer = spillway.Observers{dropped, both} }); err != nil {
		t.Fatal(err)
	}
	b.AttachObserver(attached)
	b.AttachObserver(both)
	if err := b.TransitionTo(Open); err != nil {
		t.Fatal(err)
	}
	if err := b.Reconfigure(Config{Name: "payments"}); err != nil {
		t.Fatal(err)
	}
	if err := b.TransitionTo(Closed); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		l    *eventLog
		want string
	}{
		{"Config.Observer only", dropped, "closed→open"},
		{"Config.Observer and attached", both, "closed→open,open→closed"},
		{"attached", attached, "closed→open,open→closed"},
	} {
		if got := strings.Join(c.l.transitions(), ","); got != c.want {
			t.Errorf("%s: saw %q, want %q", c.name, got, c.want)
		}
	}
}
