package pool_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
)

var quiet = slog.New(slog.DiscardHandler)

var threeURLs = []string{"http://a:1", "http://b:2", "http://c:3"}

func mustNew(t testing.TB, urls []string, o pool.Options) *pool.Pool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	p, err := pool.New(urls, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func pick(t testing.TB, p *pool.Pool, avoid *pool.Instance) *pool.Instance {
	t.Helper()
	in, err := p.Pick(avoid)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return in
}

// fail ends n failed attempts on in.
func fail(in *pool.Instance, n int) {
	for range n {
		in.Begin()
		in.End(true)
	}
}

// outlier is an ejection configuration: 3 failures, 10s × n up to 25s.
func outlier(maxEjected, panic float64) config.Outlier {
	return config.Outlier{ConsecutiveFailures: 3, Ejection: 10 * time.Second, MaxEjection: 25 * time.Second, MaxEjected: maxEjected, PanicThreshold: panic}
}

func TestNewRejects(t *testing.T) {
	h := func(mod func(*config.Health)) *config.Health {
		c := &config.Health{Path: "/h", Interval: time.Second, Timeout: time.Second, UnhealthyAfter: 1, HealthyAfter: 1}
		mod(c)
		return c
	}
	tests := []struct {
		name string
		urls []string
		o    pool.Options
		want string
	}{
		{"no instances", nil, pool.Options{}, "no instances"},
		{"bad scheme", []string{"ftp://a"}, pool.Options{}, "http:// or https://"},
		{"no host", []string{"http://"}, pool.Options{}, "http:// or https://"},
		{"unparsable", []string{"http://a b:%"}, pool.Options{}, "instance"},
		{"balance", threeURLs, pool.Options{Balance: "fastest"}, "unknown balance"},
		{"max_ejected", threeURLs, pool.Options{Outlier: config.Outlier{MaxEjected: 1.5}}, "max_ejected"},
		{"panic_threshold", threeURLs, pool.Options{Outlier: config.Outlier{PanicThreshold: -0.1}}, "panic_threshold"},
		{"consecutive_failures", threeURLs, pool.Options{Outlier: config.Outlier{ConsecutiveFailures: -1}}, "consecutive_failures"},
		{"ejection", threeURLs, pool.Options{Outlier: config.Outlier{ConsecutiveFailures: 1}}, "ejection"},
		{"interval", threeURLs, pool.Options{Health: h(func(c *config.Health) { c.Interval = 0 })}, "interval"},
		{"timeout", threeURLs, pool.Options{Health: h(func(c *config.Health) { c.Timeout = 0 })}, "timeout"},
		{"unhealthy_after", threeURLs, pool.Options{Health: h(func(c *config.Health) { c.UnhealthyAfter = 0 })}, "unhealthy_after"},
		{"healthy_after", threeURLs, pool.Options{Health: h(func(c *config.Health) { c.HealthyAfter = 0 })}, "healthy_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Name = "up"
			_, err := pool.New(tt.urls, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"up"`) {
				t.Fatalf("err = %v, want one naming the upstream and containing %q", err, tt.want)
			}
		})
	}
}

func TestRoundRobinExactOrder(t *testing.T) {
	p := mustNew(t, threeURLs, pool.Options{})
	var got []string
	for range 7 {
		got = append(got, pick(t, p, nil).String())
	}
	want := "http://a:1 http://b:2 http://c:3 http://a:1 http://b:2 http://c:3 http://a:1"
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("order = %s, want %s", g, want)
	}
}

func TestAvoidHonoured(t *testing.T) {
	for _, balance := range []string{pool.RoundRobin, pool.LeastRequest, pool.Random} {
		t.Run(balance, func(t *testing.T) {
			p := mustNew(t, threeURLs, pool.Options{Balance: balance})
			ins := p.Instances()
			seen := map[*pool.Instance]int{}
			for range 300 {
				in := pick(t, p, ins[1])
				if in == ins[1] {
					t.Fatal("Pick returned the avoided instance while others were usable")
				}
				seen[in]++
			}
			if seen[ins[0]] < 100 || seen[ins[2]] < 100 {
				t.Fatalf("the others were not shared: %v", seen)
			}

			one := mustNew(t, threeURLs[:1], pool.Options{Balance: balance})
			if in := pick(t, one, one.Instances()[0]); in != one.Instances()[0] {
				t.Fatal("a single instance must be returned even if avoided")
			}
			// An instance of another pool is no reason to avoid anything.
			if in := pick(t, one, ins[0]); in != one.Instances()[0] {
				t.Fatal("avoid from another pool changed the choice")
			}
		})
	}
}

func TestAvoidWithEjection(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	ins := p.Instances()
	fail(ins[0], 3)
	for range 50 {
		if in := pick(t, p, ins[1]); in != ins[2] {
			t.Fatalf("Pick = %v, want the only usable non-avoided instance %v", in, ins[2])
		}
	}
	fail(ins[2], 3)
	if in := pick(t, p, ins[1]); in != ins[1] {
		t.Fatalf("Pick = %v, want the avoided instance, the only usable one", in)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	p := mustNew(t, threeURLs, pool.Options{Balance: pool.LeastRequest})
	ins := p.Instances()
	ins[0].Begin()
	ins[0].Begin()
	ins[2].Begin()
	// Of any two distinct instances drawn, the one with fewer in flight
	// wins; ins[1] is idle and ins[0] the busiest, so ins[0] never wins.
	counts := map[*pool.Instance]int{}
	for range 3000 {
		counts[pick(t, p, nil)]++
	}
	if counts[ins[0]] != 0 {
		t.Fatalf("the busiest instance was picked %d times", counts[ins[0]])
	}
	// ins[1] wins every pair it is in (2 of 3 pairs); ins[2] the third.
	if c := counts[ins[1]]; c < 1800 || c > 2200 {
		t.Fatalf("the idle instance was picked %d/3000 times, want about 2000", c)
	}
	ins[0].End(false)
	ins[0].End(false)
	ins[2].End(false)
	two := mustNew(t, threeURLs[:2], pool.Options{Balance: pool.LeastRequest})
	two.Instances()[0].Begin()
	for range 100 {
		if in := pick(t, two, nil); in != two.Instances()[1] {
			t.Fatal("with two instances the idle one must always win")
		}
	}
}

func TestRandomDistribution(t *testing.T) {
	p := mustNew(t, threeURLs, pool.Options{Balance: pool.Random})
	counts := map[string]int{}
	const n = 30000
	for range n {
		counts[pick(t, p, nil).String()]++
	}
	for _, u := range threeURLs {
		if c := counts[u]; c < n/3*9/10 || c > n/3*11/10 {
			t.Fatalf("%s picked %d/%d times, want about a third: %v", u, c, n, counts)
		}
	}
}

func TestRandEdgeValues(t *testing.T) {
	// A Rand that returns 1 (outside its contract) must not index out of range.
	for _, r := range []float64{0, 0.999999, 1} {
		for _, balance := range []string{pool.Random, pool.LeastRequest} {
			p := mustNew(t, threeURLs, pool.Options{Balance: balance, Rand: func() float64 { return r }})
			pick(t, p, nil)
			pick(t, p, p.Instances()[2])
		}
	}
}

func TestEjectionTimesGrowAndCap(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	in := p.Instances()[0]
	// Ejection 10s × n, capped at 25s: 10s, 20s, 25s, 25s.
	for n, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second} {
		fail(in, 2)
		if p.EjectedCount() != 0 {
			t.Fatalf("ejection %d: ejected after 2 of 3 failures", n+1)
		}
		fail(in, 1)
		if p.EjectedCount() != 1 || !p.Status()[0].Ejected {
			t.Fatalf("ejection %d: not ejected after 3 failures: %+v", n+1, p.Status())
		}
		clock.Advance(want - 1)
		if !p.Status()[0].Ejected {
			t.Fatalf("ejection %d: back before %v", n+1, want)
		}
		clock.Advance(1)
		if p.Status()[0].Ejected || p.EjectedCount() != 0 {
			t.Fatalf("ejection %d: still ejected after %v", n+1, want)
		}
	}
}

func TestEjectionCountDecays(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	in := p.Instances()[0]
	fail(in, 3) // n=1: 10s
	clock.Advance(10 * time.Second)
	fail(in, 3) // n=2: 20s
	clock.Advance(20 * time.Second)
	clock.Advance(10 * time.Second) // one Ejection in service: n decays to 1
	fail(in, 3)                     // n=2 again: 20s, not 25s
	clock.Advance(20*time.Second - 1)
	if !p.Status()[0].Ejected {
		t.Fatal("back too early")
	}
	clock.Advance(1)
	if p.Status()[0].Ejected {
		t.Fatal("the ejection count did not decay: ejected longer than 20s")
	}
	clock.Advance(time.Hour) // fully decayed
	fail(in, 3)
	clock.Advance(10 * time.Second)
	if p.Status()[0].Ejected {
		t.Fatal("after a long time in service the ejection must last Ejection again")
	}
}

func TestSuccessResetsFailureCount(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	in := p.Instances()[0]
	fail(in, 2)
	in.Begin()
	in.End(false)
	fail(in, 2)
	if p.EjectedCount() != 0 {
		t.Fatal("a success did not reset the consecutive failures")
	}
	fail(in, 1)
	if p.EjectedCount() != 1 {
		t.Fatal("3 consecutive failures did not eject")
	}
}

func TestFailuresWhileEjectedDoNotExtend(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	in := p.Instances()[0]
	fail(in, 3)
	clock.Advance(5 * time.Second)
	fail(in, 6) // attempts that were in flight, or sent in panic mode
	clock.Advance(5 * time.Second)
	if p.Status()[0].Ejected {
		t.Fatal("failures during the ejection extended it")
	}
}

func TestOutlierOff(t *testing.T) {
	p := mustNew(t, threeURLs, pool.Options{})
	fail(p.Instances()[0], 1000)
	if p.EjectedCount() != 0 {
		t.Fatal("ejected with ConsecutiveFailures 0")
	}
	if got := p.Status()[0].InFlight; got != 0 {
		t.Fatalf("in flight = %d after balanced Begin/End", got)
	}
}

func TestMaxEjected(t *testing.T) {
	four := []string{"http://a", "http://b", "http://c", "http://d"}
	tests := []struct {
		maxEjected float64
		want       int
	}{
		{0.5, 2},
		{0.74, 2}, // rounded down
		{0.75, 3},
		{1, 4},
		{0.1, 1}, // at least one
		{0, 0},   // never
	}
	for _, tt := range tests {
		clock := spillway.NewManualClock(0)
		p := mustNew(t, four, pool.Options{Clock: clock, Outlier: outlier(tt.maxEjected, 0)})
		for _, in := range p.Instances() {
			fail(in, 3)
		}
		if got := p.EjectedCount(); got != tt.want {
			t.Fatalf("max_ejected %v: %d ejected, want %d", tt.maxEjected, got, tt.want)
		}
		// The refused ones start counting again: 3 more failures retry.
		clock.Advance(10 * time.Second)
		if p.EjectedCount() != 0 {
			t.Fatal("ejections did not end")
		}
	}
}

func TestMaxEjectedRefusalRestartsCount(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, []string{"http://a", "http://b"}, pool.Options{Clock: clock, Outlier: outlier(0.5, 0)})
	a, b := p.Instances()[0], p.Instances()[1]
	fail(a, 3)
	fail(b, 3) // refused: one of two is the limit
	clock.Advance(10 * time.Second)
	fail(b, 2)
	if p.Status()[1].Ejected {
		t.Fatal("the refused instance kept its count")
	}
	fail(b, 1)
	if !p.Status()[1].Ejected {
		t.Fatal("the refused instance was not ejected after 3 new failures")
	}
}

func TestPanicThreshold(t *testing.T) {
	clock := spillway.NewManualClock(0)
	four := []string{"http://a", "http://b", "http://c", "http://d"}
	p := mustNew(t, four, pool.Options{Clock: clock, Outlier: outlier(1, 0.5)})
	ins := p.Instances()
	fail(ins[0], 3)
	fail(ins[1], 3)
	// 2 of 4 usable: 50 % is not below the threshold, only c and d are used.
	for range 20 {
		if in := pick(t, p, nil); in == ins[0] || in == ins[1] {
			t.Fatalf("Pick returned ejected %v outside panic mode", in)
		}
	}
	fail(ins[2], 3)
	// 1 of 4 usable: panic mode, every instance in round-robin order.
	seen := map[*pool.Instance]bool{}
	for range 4 {
		seen[pick(t, p, nil)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("panic mode balanced over %d instances, want 4", len(seen))
	}
	fail(ins[3], 3)
	if in, err := p.Pick(ins[3]); err != nil || in == ins[3] {
		t.Fatalf("all ejected with a panic threshold: Pick = %v, %v; want another instance", in, err)
	}
}

func TestNoHealthyInstance(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs[:2], pool.Options{Name: "catalog", Clock: clock, Outlier: outlier(1, 0)})
	fail(p.Instances()[0], 3)
	clock.Advance(4 * time.Second)
	fail(p.Instances()[1], 3)
	in, err := p.Pick(nil)
	if in != nil || err == nil {
		t.Fatalf("Pick = %v, %v; want the no_healthy_instance error", in, err)
	}
	var se *spillway.Error
	if !errors.As(err, &se) || se.Policy != "pool" || se.Name != "catalog" {
		t.Fatalf("err = %#v, want a *spillway.Error of policy pool named catalog", err)
	}
	if !errors.Is(err, pool.ErrNoHealthyInstance) || spillway.ReasonOf(err) != spillway.ReasonNoHealthyInstance {
		t.Fatalf("err = %v, reason %q", err, spillway.ReasonOf(err))
	}
	if se.RetryAfter != 6*time.Second {
		t.Fatalf("RetryAfter = %v, want 6s (the first ejection ends then)", se.RetryAfter)
	}
	clock.Advance(6 * time.Second)
	if in := pick(t, p, nil); in != p.Instances()[0] {
		t.Fatalf("Pick = %v after the first ejection ended", in)
	}
}

func TestStatus(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	ins := p.Instances()
	ins[1].Begin()
	ins[1].Begin()
	fail(ins[2], 3)
	want := []pool.InstanceStatus{
		{URL: "http://a:1", Healthy: true},
		{URL: "http://b:2", Healthy: true, InFlight: 2},
		{URL: "http://c:3", Healthy: true, Ejected: true},
	}
	got := p.Status()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Status()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if p.Name() != "" || ins[0].URL.Host != "a:1" {
		t.Fatal("Name or URL wrong")
	}
}

// An instance list change keeps the ejection of the instances that stay:
// a reload must not bring an ejected instance back early.
func TestInheritKeepsEjectionOfInstancesThatStay(t *testing.T) {
	clock := spillway.NewManualClock(0)
	old := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	fail(old.Instances()[1], 3) // b ejected
	fail(old.Instances()[2], 2) // c one failure short of an ejection
	next := mustNew(t, []string{"http://b:2", "http://c:3", "http://d:4"}, pool.Options{Clock: clock, Outlier: outlier(1, 0)})
	dropped := next.Inherit(old)
	if len(dropped) != 1 || dropped[0] != "http://a:1" {
		t.Errorf("dropped = %v, want [http://a:1]", dropped)
	}
	st := next.Status()
	if !st[0].Ejected || st[1].Ejected || st[2].Ejected {
		t.Fatalf("after Inherit: %+v, want b still ejected, c and d not", st)
	}
	if n := next.EjectedCount(); n != 1 {
		t.Errorf("EjectedCount = %d, want 1", n)
	}
	for range 20 {
		if in := pick(t, next, nil); in.String() == "http://b:2" {
			t.Fatal("Pick chose the ejected instance carried over")
		}
	}
	fail(next.Instances()[1], 1) // c's third failure in a row: carried over
	if !next.Status()[1].Ejected {
		t.Error("c's failures in a row were not carried over")
	}
}

func TestOnTransitionReportsEjectionAndRestore(t *testing.T) {
	clock := spillway.NewManualClock(0)
	var got []pool.Transition
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0),
		OnTransition: func(tr pool.Transition) { got = append(got, tr) }})
	fail(p.Instances()[0], 3)
	clock.Advance(10 * time.Second)
	p.Status()
	want := []pool.Transition{{Instance: "http://a:1", To: "ejected", For: 10 * time.Second}, {Instance: "http://a:1", To: "restored"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("transitions = %+v, want %+v", got, want)
	}
}
