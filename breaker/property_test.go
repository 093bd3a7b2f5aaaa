package breaker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"pgregory.net/rapid"
)

// model is the naive reference for a closed breaker's window: a plain
// slice of every recorded outcome, judged after each call.
type model struct {
	cfg    Config
	width  int64 // time window: bucket width
	recs   []modelRec
	consec int
}

type modelRec struct {
	at         int64
	fail, slow bool
}

func (m *model) add(at int64, fail, slow bool) {
	m.recs = append(m.recs, modelRec{at, fail, slow})
	if fail {
		m.consec++
	} else {
		m.consec = 0
	}
}

// window returns the recorded calls still in the window at now.
func (m *model) window(now int64) []modelRec {
	if m.cfg.Window == CountWindow {
		return m.recs[max(0, len(m.recs)-m.cfg.WindowSize):]
	}
	e := floorDiv(now, m.width)
	var w []modelRec
	for _, r := range m.recs {
		if re := floorDiv(r.at, m.width); re > e-int64(m.cfg.Buckets) && re <= e {
			w = append(w, r)
		}
	}
	return w
}

func (m *model) counts(now int64) (calls, fails, slow int) {
	for _, r := range m.window(now) {
		calls++
		if r.fail {
			fails++
		}
		if r.slow {
			slow++
		}
	}
	return calls, fails, slow
}

func (m *model) trips(now int64) bool {
	if m.cfg.ConsecutiveFailures > 0 && m.consec >= m.cfg.ConsecutiveFailures {
		return true
	}
	calls, f, s := m.counts(now)
	return calls >= m.cfg.MinCalls &&
		(float64(f)/float64(calls) >= m.cfg.FailureRate || float64(s)/float64(calls) >= m.cfg.SlowCallRate)
}

func drawRate(t *rapid.T, label string) float64 {
	return rapid.SampledFrom([]float64{0, 0.1, 0.25, 1.0 / 3, 0.5, 0.6, 0.75, 0.99, 1}).Draw(t, label)
}

func drawWindowConfig(t *rapid.T) Config {
	cfg := Config{
		Window:              rapid.SampledFrom([]WindowType{CountWindow, TimeWindow}).Draw(t, "window"),
		WindowSize:          rapid.IntRange(1, 30).Draw(t, "size"),
		Buckets:             rapid.IntRange(1, 6).Draw(t, "buckets"),
		MinCalls:            rapid.IntRange(1, 35).Draw(t, "minCalls"),
		FailureRate:         drawRate(t, "failureRate"),
		SlowCallRate:        drawRate(t, "slowRate"),
		ConsecutiveFailures: rapid.IntRange(0, 6).Draw(t, "consecutive"),
	}
	cfg.WindowDuration = time.Duration(cfg.Buckets) * time.Second
	if rapid.Bool().Draw(t, "slowDetection") {
		cfg.SlowCallDuration = time.Second
	}
	return cfg
}

// The window's counts, rates and trip decisions equal the naive model's,
// call after call, for both window types.
func TestPropertyWindowMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawWindowConfig(t)
		h := newHarness(t, cfg)
		cfg = h.b.Config()
		m := &model{cfg: cfg, width: int64(time.Second)}
		calls := rapid.IntRange(1, 150).Draw(t, "calls")
		for i := range calls {
			if cfg.Window == TimeWindow {
				h.clk.Advance(time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(t, "gap")))
			}
			letter := rapid.SampledFrom([]byte("SSSFFLXI")).Draw(t, "outcome")
			err, slow := patternCall(letter)
			d := time.Duration(0)
			if slow {
				d = 1500 * time.Millisecond
			}
			if rej := h.call(err, d); rej != nil {
				t.Fatalf("call %d rejected: %v", i, rej)
			}
			now := h.clk.Nanotime()
			if letter != 'I' {
				m.add(now, err != nil, slow && cfg.SlowCallDuration > 0)
			}
			// Only a recorded call is judged: an ignored one changes nothing,
			// even when buckets expired since the last call.
			wantTrip := letter != 'I' && m.trips(now)
			s := h.b.Snapshot()
			if got := s.State == Open; got != wantTrip {
				mc, mf, ms := m.counts(now)
				t.Fatalf("call %d (%c): open=%v, model says %v (model window %d/%d/%d, consec %d; snapshot %+v)",
					i, letter, got, wantTrip, mc, mf, ms, m.consec, s)
			}
			if wantTrip {
				h.b.Reset()
				m.recs, m.consec = nil, 0
				continue
			}
			mc, mf, ms := m.counts(now)
			if s.Calls != mc || s.Failures != mf || s.Slow != ms {
				t.Fatalf("call %d: window %d/%d/%d, model %d/%d/%d", i, s.Calls, s.Failures, s.Slow, mc, mf, ms)
			}
			if cfg.Window == CountWindow && s.Calls > cfg.WindowSize {
				t.Fatalf("%d calls in a window of %d", s.Calls, cfg.WindowSize)
			}
			if mc > 0 && (s.FailureRate != float64(mf)/float64(mc) || s.SlowCallRate != float64(ms)/float64(mc)) {
				t.Fatalf("rates %v/%v, model %d/%d of %d", s.FailureRate, s.SlowCallRate, mf, ms, mc)
			}
			if cfg.ConsecutiveFailures > 0 && s.ConsecutiveFailures != m.consec {
				t.Fatalf("consecutive failures %d, model %d", s.ConsecutiveFailures, m.consec)
			}
		}
	})
}

// Resizing a count window keeps the newest outcomes that fit.
func TestPropertyResizeKeepsNewest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.IntRange(1, 20).Draw(t, "size")
		h := newHarness(t, Config{WindowSize: size, MinCalls: 1000})
		var win []bool // the model's window: failed or not
		for range rapid.IntRange(1, 100).Draw(t, "steps") {
			if rapid.IntRange(0, 9).Draw(t, "resize?") == 0 {
				size = rapid.IntRange(1, 20).Draw(t, "newSize")
				mustReconfigure(t, h.b, Config{WindowSize: size, MinCalls: 1000})
				win = win[max(0, len(win)-size):]
			}
			fail := rapid.Bool().Draw(t, "fail")
			var err error
			if fail {
				err = errDown
			}
			_ = h.call(err, 0)
			win = append(win, fail)
			win = win[max(0, len(win)-size):]
			f := 0
			for _, x := range win {
				if x {
					f++
				}
			}
			if s := h.b.Snapshot(); s.Calls != len(win) || s.Failures != f {
				t.Fatalf("window %d calls, %d failed; model %d, %d", s.Calls, s.Failures, len(win), f)
			}
		}
	})
}

// Whatever happens to permits and time: at most HalfOpenProbes probes are
// in flight, transitions form one unbroken chain, a leaked permit cannot
// wedge the breaker, and once every permit is released no probe is in flight.
func TestPropertyPermitsAndProbes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			ConsecutiveFailures: rapid.IntRange(1, 3).Draw(t, "consecutive"),
			HalfOpenProbes:      rapid.IntRange(1, 4).Draw(t, "probes"),
			OpenFor:             time.Duration(rapid.IntRange(1, 5).Draw(t, "openFor")) * time.Second,
			MaxOpenFor:          20 * time.Second,
			ProbeTimeout:        time.Duration(rapid.IntRange(1, 5).Draw(t, "probeTimeout")) * time.Second,
		}
		if rapid.Bool().Draw(t, "slowDetection") {
			cfg.SlowCallDuration = 500 * time.Millisecond
		}
		h := newHarness(t, cfg)
		var permits []spillway.Permit
		outcomes := []error{nil, nil, errDown, context.Canceled}
		t.Repeat(map[string]func(*rapid.T){
			"acquire": func(t *rapid.T) {
				if p, err := h.b.Acquire(ctx); err == nil {
					permits = append(permits, p)
				}
			},
			"release": func(t *rapid.T) {
				if len(permits) == 0 {
					t.Skip("no permit")
				}
				i := rapid.IntRange(0, len(permits)-1).Draw(t, "permit")
				permits[i].Release(rapid.SampledFrom(outcomes).Draw(t, "outcome"))
				permits = append(permits[:i], permits[i+1:]...)
			},
			"execute": func(t *rapid.T) {
				err := rapid.SampledFrom(outcomes).Draw(t, "outcome")
				_ = h.b.Execute(ctx, func(context.Context) error { return err })
			},
			"advance": func(t *rapid.T) {
				h.clk.Advance(time.Duration(rapid.Int64Range(0, int64(6*time.Second)).Draw(t, "d")))
			},
			"state": func(t *rapid.T) { h.b.State() },
			"manual": func(t *rapid.T) {
				switch rapid.IntRange(0, 9).Draw(t, "which") {
				case 0:
					h.b.Reset()
				case 1:
					h.b.ForceOpen()
				case 2:
					h.b.Disable()
				case 3:
					h.b.MetricsOnly()
				default:
					_ = h.b.TransitionTo(rapid.SampledFrom([]State{Closed, Open, HalfOpen}).Draw(t, "to"))
				}
			},
			"": func(t *rapid.T) {
				s := h.b.Snapshot()
				if s.ProbesInFlight > cfg.HalfOpenProbes {
					t.Fatalf("%d probes in flight, limit %d", s.ProbesInFlight, cfg.HalfOpenProbes)
				}
				if s.State != HalfOpen && s.ProbesInFlight != 0 {
					t.Fatalf("%d probes in flight while %v", s.ProbesInFlight, s.State)
				}
				if s.ProbesInFlight > len(permits) {
					t.Fatalf("%d probes in flight, %d permits held", s.ProbesInFlight, len(permits))
				}
				checkChain(t, h.log.transitions())
			},
		})
		// Leaked permits cannot wedge it: after ProbeTimeout and the longest
		// opening, a probe is admitted (unless forced open).
		h.clk.Advance(cfg.ProbeTimeout)
		h.b.State()
		h.clk.Advance(cfg.MaxOpenFor + cfg.MaxOpenFor/5)
		if st := h.b.State(); st != ForcedOpen {
			p, err := h.b.Acquire(ctx)
			if err != nil {
				t.Fatalf("wedged in %v with %d permits leaked: %v", st, len(permits), err)
			}
			permits = append(permits, p)
		}
		for _, p := range permits {
			p.Release(nil)
		}
		if s := h.b.Snapshot(); s.ProbesInFlight != 0 {
			t.Fatalf("every permit released, %d probes still in flight", s.ProbesInFlight)
		}
		checkChain(t, h.log.transitions())
	})
}

// checkChain verifies that each transition starts where the previous one
// ended and changes the state.
func checkChain(t tb, tr []string) {
	prev := "closed"
	for i, s := range tr {
		from, to, _ := strings.Cut(s, "→")
		if from != prev || from == to {
			t.Fatalf("transition %d %q does not follow %q (all: %v)", i, s, prev, tr)
		}
		prev = to
	}
}
