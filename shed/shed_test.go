package shed_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/shed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	sheddable = spillway.WithPriority(context.Background(), spillway.PrioritySheddable)
	normal    = context.Background()
	critical  = spillway.WithPriority(context.Background(), spillway.PriorityCritical)
)

// hold takes n slots of b and returns their permits.
func hold(t *testing.T, b *bulkhead.Bulkhead, n int) []spillway.Permit {
	t.Helper()
	ps := make([]spillway.Permit, n)
	for i := range ps {
		p, ok := b.TryAcquire()
		if !ok {
			t.Fatalf("slot %d of %d: bulkhead full", i+1, n)
		}
		ps[i] = p
	}
	return ps
}

// TestShedsTheLowestClassFirst holds the load at each level of a bulkhead
// of 10 and asks each class: sheddable goes at 50 %, default at 90 %,
// critical is never refused by the shedder.
func TestShedsTheLowestClassFirst(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10})
	var events []spillway.Event
	s := shed.MustNew(shed.Config{Name: "api", Limiter: b, Observer: spillway.ObserverFunc(func(e spillway.Event) { events = append(events, e) })})
	type want struct{ sheddable, normal, critical bool }
	for held := 0; held <= 10; held++ {
		w := want{sheddable: held < 5, normal: held < 9, critical: true}
		ps := hold(t, b, held)
		got := want{admit(t, s, sheddable), admit(t, s, normal), admit(t, s, critical)}
		if got != w {
			t.Errorf("%d of 10 in flight: admitted (sheddable, default, critical) = %v, want %v", held, got, w)
		}
		for _, p := range ps {
			p.Release(nil)
		}
	}
	if n, m := s.Shed(spillway.PrioritySheddable), s.Shed(spillway.PriorityDefault); n != 6 || m != 2 {
		t.Errorf("Shed = %d sheddable, %d default; want 6 and 2", n, m)
	}
	if n := s.Shed(spillway.PriorityCritical); n != 0 {
		t.Errorf("Shed(critical) = %d", n)
	}
	if len(events) != 8 {
		t.Fatalf("%d events, want 8", len(events))
	}
	if e := events[0]; e.Kind != spillway.EventRejection || e.Policy != "shed" || e.Name != "api" || e.Reason != spillway.ReasonBulkheadFull || e.Context != sheddable {
		t.Errorf("event = %+v", e)
	}
}

// admit reports whether s admits a call with ctx, and checks the refusal.
func admit(t *testing.T, s *shed.Shedder, ctx context.Context) bool {
	t.Helper()
	p, err := s.Acquire(ctx)
	if err == nil {
		p.Release(nil)
		return true
	}
	if !errors.Is(err, shed.ErrShed) || spillway.ReasonOf(err) != spillway.ReasonBulkheadFull || !spillway.IsRejection(err) {
		t.Errorf("refusal %v: want ErrShed, bulkhead_full, a rejection", err)
	}
	return false
}

// TestFollowsTheLimit: the pressure is read against the limiter's current
// limit, so shedding follows a limit that moves (an adaptive limiter).
func TestFollowsTheLimit(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10})
	s := shed.MustNew(shed.Config{Limiter: b})
	ps := hold(t, b, 4)
	defer func() {
		for _, p := range ps {
			p.Release(nil)
		}
	}()
	if !admit(t, s, sheddable) {
		t.Fatal("4 of 10: sheddable refused")
	}
	if err := b.Resize(8, 0); err != nil {
		t.Fatal(err)
	}
	if admit(t, s, sheddable) {
		t.Fatal("4 of 8: sheddable admitted")
	}
	if !admit(t, s, normal) {
		t.Fatal("4 of 8: default refused")
	}
}

func TestThresholds(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10})
	for _, c := range []struct {
		name      string
		sheddable float64
		def       float64
		ok        bool
	}{
		{"defaults", 0, 0, true},
		{"never shed", 1, 1, true},
		{"negative", -0.1, 0, false},
		{"above one", 0, 1.5, false},
		{"NaN", 0, nan(), false},
		{"sheddable above default", 0.8, 0.7, false},
	} {
		s, err := shed.New(shed.Config{Limiter: b, SheddableBelow: c.sheddable, DefaultBelow: c.def})
		if (err == nil) != c.ok {
			t.Errorf("%s: New error = %v, want ok %v", c.name, err, c.ok)
		}
		if s != nil && (s.SetThresholds(c.sheddable, c.def) != nil) {
			t.Errorf("%s: SetThresholds refuses what New took", c.name)
		}
	}
	if _, err := shed.New(shed.Config{}); err == nil {
		t.Error("New without a Limiter: no error")
	}
	s := shed.MustNew(shed.Config{Limiter: b})
	if sh, d := s.Thresholds(); sh != 0.5 || d != 0.9 {
		t.Errorf("zero Config thresholds = %v, %v", sh, d)
	}
	ps := hold(t, b, 10)
	defer func() {
		for _, p := range ps {
			p.Release(nil)
		}
	}()
	if err := s.SetThresholds(1, 1); err != nil {
		t.Fatal(err)
	}
	if !admit(t, s, sheddable) {
		t.Error("threshold 1: the shedder refused a call (the limiter alone refuses at 100 %)")
	}
	if err := s.SetThresholds(0.9, 0.5); err == nil {
		t.Error("SetThresholds(0.9, 0.5): no error")
	}
}

func nan() float64 {
	var z float64
	return z / z
}

func TestAdmitAllocatesNothing(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10})
	s := shed.MustNew(shed.Config{Limiter: b})
	ps := hold(t, b, 9)
	defer func() {
		for _, p := range ps {
			p.Release(nil)
		}
	}()
	if n := testing.AllocsPerRun(100, func() {
		_, _ = s.Acquire(critical)
		_, _ = s.Acquire(sheddable)
	}); n != 0 {
		t.Fatalf("Acquire allocates %v times", n)
	}
}

// TestInAPipeline: in Policies.Guards, after the bulkhead, the call's own
// slot is counted: a sheddable call at 4 of 10 in flight runs at 5 and is
// shed.
func TestInAPipeline(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10})
	s := shed.MustNew(shed.Config{Name: "api", Limiter: b})
	var refusals []spillway.Event
	obs := spillway.ObserverFunc(func(e spillway.Event) {
		if e.Kind == spillway.EventRejection {
			refusals = append(refusals, e)
		}
	})
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Bulkhead: b, Guards: []spillway.Guard{s}, Observer: obs})
	ps := hold(t, b, 4)
	defer func() {
		for _, p := range ps {
			p.Release(nil)
		}
	}()
	call := func(context.Context) (int, error) { return 1, nil }
	if _, err := pl.Execute(sheddable, call); !errors.Is(err, shed.ErrShed) {
		t.Errorf("sheddable: %v, want ErrShed", err)
	}
	if _, err := pl.Execute(critical, call); err != nil {
		t.Errorf("critical: %v", err)
	}
	if b.InFlight() != 4 {
		t.Errorf("in flight after the calls: %d, want 4", b.InFlight())
	}
	// The shedder has no Observer: the pipeline's gets its refusal.
	if len(refusals) != 1 || refusals[0].Policy != "shed" || refusals[0].Name != "api" {
		t.Errorf("the pipeline's observer saw the refusals %+v, want the shedder's one", refusals)
	}
}
