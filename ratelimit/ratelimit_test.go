package ratelimit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSmoothSpacesCalls: burst 1 admits one call per interval, and the
// refusal in between says how long until the next token.
func TestSmoothSpacesCalls(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	l := MustNew(Config{Limit: 10, Clock: clock}) // one per 100ms
	if ok, _ := l.Allow(); !ok {
		t.Fatal("first call refused: a bucket starts full")
	}
	clock.Advance(30 * time.Millisecond)
	if ok, wait := l.Allow(); ok || wait != 70*time.Millisecond {
		t.Fatalf("Allow 30ms later = %v, %v; want false, 70ms", ok, wait)
	}
	clock.Advance(70 * time.Millisecond)
	if ok, _ := l.Allow(); !ok {
		t.Fatal("call one interval later refused")
	}
	if got := l.Rejected(); got != 1 {
		t.Errorf("Rejected = %d, want 1", got)
	}
}

// TestBurstyAdmitsBurst: burst N admits N at once after a quiet spell,
// then one per interval.
func TestBurstyAdmitsBurst(t *testing.T) {
	clock := spillway.NewManualClock(0)
	l := MustNew(Config{Limit: 100, Per: time.Minute, Burst: 5, Clock: clock}) // one per 600ms
	for i := range 5 {
		if ok, _ := l.Allow(); !ok {
			t.Fatalf("call %d of the burst refused", i)
		}
	}
	if ok, wait := l.Allow(); ok || wait != 600*time.Millisecond {
		t.Fatalf("sixth call = %v, %v; want false, 600ms", ok, wait)
	}
	if got := l.Tokens(); got != 0 {
		t.Errorf("Tokens after the burst = %v, want 0", got)
	}
	clock.Advance(1200 * time.Millisecond)
	if got := l.Tokens(); got != 2 {
		t.Errorf("Tokens 1.2s later = %v, want 2", got)
	}
	clock.Advance(time.Hour)
	if got := l.Tokens(); got != 5 {
		t.Errorf("Tokens an hour later = %v, want 5 (the burst, no more)", got)
	}
}

// TestRefusalIsThrottled: Acquire's refusal is the preallocated throttled
// error, wrapping ErrLimited, with one interval as RetryAfter; it is
// reported once to the observer and costs no allocation.
func TestRefusalIsThrottled(t *testing.T) {
	var events []spillway.Event
	obs := spillway.ObserverFunc(func(e spillway.Event) { events = append(events, e) })
	l := MustNew(Config{Name: "api", Limit: 4, Clock: spillway.NewManualClock(0), Observer: obs})
	ctx := context.Background()
	if _, err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := l.Acquire(ctx)
	var e *spillway.Error
	if !errors.As(err, &e) || !errors.Is(err, ErrLimited) || spillway.ReasonOf(err) != spillway.ReasonThrottled ||
		!spillway.IsRejection(err) || e.Policy != "ratelimit" || e.Name != "api" || e.RetryAfter != 250*time.Millisecond {
		t.Fatalf("refusal = %#v, want a throttled *spillway.Error of ratelimit \"api\" wrapping ErrLimited, retry after 250ms", err)
	}
	if len(events) != 1 || events[0].Kind != spillway.EventRejection || events[0].Reason != spillway.ReasonThrottled ||
		events[0].Policy != "ratelimit" || events[0].Name != "api" || events[0].Context != ctx {
		t.Fatalf("events = %+v, want one throttled rejection of ratelimit \"api\" with the call's context", events)
	}
	l2 := MustNew(Config{Limit: 1, Clock: spillway.NewManualClock(0)})
	if allocs := testing.AllocsPerRun(100, func() { _, _ = l2.Acquire(ctx) }); allocs != 0 {
		t.Errorf("a refused Acquire allocates %v times, want 0", allocs)
	}
}

// TestAllowedCallAllocatesNothing: the allowed path (Acquire, Allow,
// AllowKey of a tracked key, short or long) costs no allocation.
func TestAllowedCallAllocatesNothing(t *testing.T) {
	clock := spillway.NewManualClock(0)
	l := MustNew(Config{Limit: 1, Clock: clock})
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Clock: clock}})
	long := strings.Repeat("k", 3*MaxKeyLen)
	k.AllowKey("client")
	k.AllowKey(long)
	ctx := context.Background()
	for name, f := range map[string]func(){
		"Acquire": func() {
			p, _ := l.Acquire(ctx)
			p.Release(nil)
		},
		"Allow":             func() { l.Allow() },
		"AllowKey":          func() { k.AllowKey("client") },
		"AllowKey/long key": func() { k.AllowKey(long) },
	} {
		if allocs := testing.AllocsPerRun(100, func() { clock.Advance(time.Second); f() }); allocs != 0 {
			t.Errorf("%s allocates %v times per allowed call, want 0", name, allocs)
		}
	}
}

// TestMaxWaitQueuesCallsOneIntervalApart: with MaxWait, a burst of callers
// is admitted one interval apart, and those whose token comes too late are
// refused at once.
func TestMaxWaitQueuesCallsOneIntervalApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := MustNew(Config{Limit: 10, MaxWait: 250 * time.Millisecond}) // one per 100ms
		start := time.Now()
		var (
			mu       sync.Mutex
			admitted []time.Duration
			refused  int
			wg       sync.WaitGroup
		)
		for range 5 {
			wg.Go(func() {
				_, err := l.Acquire(t.Context())
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					refused++
					return
				}
				admitted = append(admitted, time.Since(start))
			})
		}
		wg.Wait()
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}
		if refused != 2 || len(admitted) != 3 || admitted[0] != want[0] || admitted[1] != want[1] || admitted[2] != want[2] {
			t.Fatalf("admitted at %v, %d refused; want %v and 2 refused", admitted, refused, want)
		}
	})
}

// TestCanceledWaitGivesTheTokenBack: a caller whose context ends while it
// waits gets the context's cause, and its token goes to the next caller.
func TestCanceledWaitGivesTheTokenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := MustNew(Config{Limit: 1, MaxWait: time.Minute})
		if _, err := l.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		cause := errors.New("client left")
		ctx, cancel := context.WithCancelCause(t.Context())
		done := make(chan error)
		go func() {
			_, err := l.Acquire(ctx)
			done <- err
		}()
		synctest.Wait()
		cancel(cause)
		if err := <-done; !errors.Is(err, cause) {
			t.Fatalf("canceled wait = %v, want the context's cause", err)
		}
		start := time.Now()
		if _, err := l.Acquire(t.Context()); err != nil || time.Since(start) != time.Second {
			t.Fatalf("next caller: %v after %v; want admitted after 1s, the given-back token", err, time.Since(start))
		}
	})
}

// TestUpdateKeepsState: Update changes the limit in place; the bucket keeps
// the tokens it holds and refills at the new rate.
func TestUpdateKeepsState(t *testing.T) {
	clock := spillway.NewManualClock(0)
	l := MustNew(Config{Name: "api", Limit: 1, Burst: 3, Clock: clock})
	l.Allow()
	l.Allow() // one token left
	if err := l.Update(func(c *Config) { c.Limit = 4 }); err != nil {
		t.Fatal(err)
	}
	if c := l.Config(); c.Name != "api" || c.Burst != 3 || c.Limit != 4 || c.Per != time.Second {
		t.Fatalf("Config after Update = %+v, want api, burst 3, 4 per 1s", c)
	}
	if got := l.Tokens(); got != 1 {
		t.Fatalf("Tokens after Update = %v, want the 1 it held", got)
	}
	l.Allow()
	if ok, wait := l.Allow(); ok || wait != 250*time.Millisecond {
		t.Fatalf("Allow past the kept token = %v, %v; want false, 250ms (the new interval)", ok, wait)
	}
	_, err := l.Acquire(context.Background())
	if e, _ := errors.AsType[*spillway.Error](err); e == nil || e.RetryAfter != 250*time.Millisecond {
		t.Errorf("refusal after Update = %v, want retry after the new interval 250ms", err)
	}
	// A smaller burst caps the tokens kept.
	clock.Advance(time.Hour)
	if err := l.Update(func(c *Config) { c.Burst = 2 }); err != nil {
		t.Fatal(err)
	}
	if got := l.Tokens(); got != 2 {
		t.Fatalf("Tokens after Burst 3 -> 2 on a full bucket = %v, want 2", got)
	}
	if err := l.Update(func(c *Config) { c.Limit = 0 }); err == nil || !strings.Contains(err.Error(), "Limit") {
		t.Errorf("Update(Limit 0) = %v, want an error naming Limit", err)
	}
	if c := l.Config(); c.Limit != 4 {
		t.Errorf("a refused Update changed Limit to %d", c.Limit)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Limit"},
		{Config{Limit: -1}, "Limit"},
		{Config{Limit: 1, Per: -time.Second}, "Per"},
		{Config{Limit: 1, Burst: -1}, "Burst"},
		{Config{Limit: 1, MaxWait: -1}, "MaxWait"},
		{Config{Limit: 1, Per: time.Hour, Burst: 1 << 40}, "Burst"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewKeyed(KeyedConfig{Config: Config{Limit: 1, MaxWait: time.Second}}); err == nil {
		t.Error("NewKeyed with a MaxWait: no error")
	}
	if _, err := NewKeyed(KeyedConfig{Config: Config{Limit: 1}, MaxKeys: -1}); err == nil {
		t.Error("NewKeyed with MaxKeys -1: no error")
	}
}

// TestGuardInPipeline: a Limiter is a pipeline guard; its refusal ends the
// execution with the throttled error and the call never runs.
func TestGuardInPipeline(t *testing.T) {
	l := MustNew(Config{Limit: 1, Clock: spillway.NewManualClock(0)})
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Guards: []spillway.Guard{l}})
	calls := 0
	call := func(context.Context) (int, error) { calls++; return 1, nil }
	if _, err := pl.Execute(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Execute(context.Background(), call); !errors.Is(err, ErrLimited) || calls != 1 {
		t.Fatalf("second execution = %v after %d calls; want ErrLimited and 1 call", err, calls)
	}
}
