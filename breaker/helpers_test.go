package breaker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	ctx        = context.Background()
	errDown    = errors.New("downstream failed")
	clockStart = time.Hour
)

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// eventLog is an Observer that records events and checks that the breaker
// never reports one while holding its lock.
type eventLog struct {
	t  tb
	b  *Breaker
	mu sync.Mutex
	ev []spillway.Event
}

func (l *eventLog) Observe(e spillway.Event) {
	if l.b != nil {
		if !l.b.mu.TryLock() {
			l.t.Errorf("event %v %s→%s reported under the breaker's lock", e.Kind, e.From, e.To)
		} else {
			l.b.mu.Unlock()
		}
	}
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

// transitions returns the transitions seen so far as "from→to".
func (l *eventLog) transitions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, e := range l.ev {
		if e.Kind == spillway.EventTransition {
			s = append(s, e.From+"→"+e.To)
		}
	}
	return s
}

func (l *eventLog) count(kind spillway.EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.ev {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// harness is a breaker on a manual clock with an event log.
type harness struct {
	t   tb
	b   *Breaker
	clk *spillway.ManualClock
	log *eventLog
}

func newHarness(t tb, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, clk: spillway.NewManualClock(clockStart), log: &eventLog{t: t}}
	cfg.Clock = h.clk
	if cfg.Observer == nil {
		cfg.Observer = h.log
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.b, h.log.b = b, b
	return h
}

// call runs one call that takes d and ends with err; it returns the
// breaker's rejection, if any.
func (h *harness) call(err error, d time.Duration) error {
	p, rej := h.b.Acquire(ctx)
	if rej != nil {
		return rej
	}
	h.clk.Advance(d)
	p.Release(err)
	return nil
}

// outcome of one pattern letter: S success, F failure, L slow success,
// X slow failure, I ignored (the caller's cancellation).
func patternCall(c byte) (error, bool) {
	switch c {
	case 'S':
		return nil, false
	case 'F':
		return errDown, false
	case 'L':
		return nil, true
	case 'X':
		return errDown, true
	case 'I':
		return context.Canceled, false
	}
	panic("bad pattern letter " + string(c))
}

// run plays pattern (see patternCall) with slow calls taking slow, and
// returns the index of the call after which the breaker opened (-1: never).
func (h *harness) run(pattern string, slow time.Duration) int {
	h.t.Helper()
	for i := range len(pattern) {
		err, isSlow := patternCall(pattern[i])
		d := time.Duration(0)
		if isSlow {
			d = slow
		}
		if rej := h.call(err, d); rej != nil {
			h.t.Fatalf("call %d of %q rejected: %v", i, pattern, rej)
		}
		if h.b.State() != Closed {
			return i
		}
	}
	return -1
}

func (h *harness) wantState(want State) {
	h.t.Helper()
	if got := h.b.State(); got != want {
		h.t.Fatalf("state = %v, want %v", got, want)
	}
}

// trip opens a fresh-windowed breaker with failures (it needs
// ConsecutiveFailures or a small MinCalls).
func (h *harness) trip() {
	h.t.Helper()
	for range 1000 {
		if h.b.State() == Open {
			return
		}
		if rej := h.call(errDown, 0); rej != nil {
			h.t.Fatalf("rejected while tripping: %v", rej)
		}
	}
	h.t.Fatal("breaker never opened")
}

func repeat(s string, n int) string {
	var out []byte
	for range n {
		out = append(out, s...)
	}
	return string(out)
}
