package overload

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/spillway-dev/spillway"
)

// clockOrigin is where the simulation's spillway.Clock starts, so that no
// policy ever reads a zero time it might take for "never".
const clockOrigin = time.Hour

// Simulate runs one row on the simulated downstream, on simulated time only:
// the same cfg.Seed gives the same Result. Every row sees the same arrivals
// and the same work per arrival (separate random streams), so rows differ
// only by their strategy.
//
// sleep, when not nil, is called with every step of simulated time: inside a
// testing/synctest bubble, time.Sleep keeps the bubble's fake time (which
// failsafe-go reads through time.Now) equal to the simulation's.
func Simulate(cfg Config, row Row, sleep func(time.Duration)) Result {
	s := &sim{
		cfg:      cfg,
		arrivals: rand.New(rand.NewPCG(cfg.Seed, 1)),
		work:     rand.New(rand.NewPCG(cfg.Seed, 2)),
		ds:       NewDownstream(cfg.Capacity, cfg.Kappa),
		clock:    spillway.NewManualClock(clockOrigin),
		byCall:   make(map[*Call]*simCall),
		rec:      newRecorder(cfg, row.Name),
	}
	s.strategy = row.New(s.clock, rand.New(rand.NewPCG(cfg.Seed, 3)))
	s.run(sleep)
	return s.rec.result()
}

type sim struct {
	cfg            Config
	arrivals, work *rand.Rand
	ds             *Downstream
	clock          *spillway.ManualClock
	strategy       Strategy
	rec            *recorder

	now       time.Duration
	seq       uint64
	byCall    map[*Call]*simCall
	deadlines []*simCall // admitted calls in start order: their timeouts come in that order
}

// simCall is an admitted call the client waits for.
type simCall struct {
	call   *Call
	start  time.Duration
	ticket Ticket
	over   bool // completed or timed out
}

const never = time.Duration(math.MaxInt64)

func (s *sim) run(sleep func(time.Duration)) {
	nextArrival := s.interarrival()
	nextTick := s.cfg.Bucket
	steps := s.cfg.Steps
	for {
		step := never
		if len(steps) > 0 {
			step = steps[0].At
		}
		done := never
		if dt, ok := s.ds.NextDone(); ok {
			done = s.now + dt
		}
		timeout := s.nextTimeout()
		t := min(done, timeout, nextTick, nextArrival, step)
		if t > s.cfg.Duration {
			return
		}
		s.ds.Advance(t - s.now)
		if sleep != nil && t > s.now {
			sleep(t - s.now)
		}
		s.now = t
		s.clock.Set(clockOrigin + t)
		// One event per turn, completions first: a call that completes at its
		// deadline made it.
		switch t {
		case done:
			s.complete()
		case timeout:
			s.expire()
		case nextTick:
			s.rec.sample(t, s.strategy.Limit(), s.ds.Live())
			nextTick += s.cfg.Bucket
		case step:
			if c := steps[0].Capacity; c > 0 {
				s.ds.SetCapacity(c)
			}
			if steps[0].Load > 0 {
				// Poisson arrivals are memoryless: the next one can be
				// drawn again at the new rate.
				nextArrival = t + s.interarrival()
			}
			steps = steps[1:]
		default:
			s.arrive()
			nextArrival = t + s.interarrival()
		}
	}
}

func (s *sim) interarrival() time.Duration {
	return time.Duration(s.arrivals.ExpFloat64() / s.cfg.arrivalRate(s.now) * 1e9)
}

// nextTimeout is the deadline of the oldest call still waited for.
func (s *sim) nextTimeout() time.Duration {
	for len(s.deadlines) > 0 && s.deadlines[0].over {
		s.deadlines[0] = nil
		s.deadlines = s.deadlines[1:]
	}
	if len(s.deadlines) == 0 {
		return never
	}
	return s.deadlines[0].start + s.cfg.Timeout
}

func (s *sim) arrive() {
	// The work is drawn for every arrival, admitted or not, so that arrival
	// i needs the same work in every row.
	work := Work(s.work, s.cfg.Latency)
	t, ok := s.strategy.Acquire()
	s.rec.arrival(s.now, ok)
	if !ok {
		return
	}
	s.seq++
	c := &simCall{call: s.ds.Start(work, s.seq), start: s.now, ticket: t}
	s.byCall[c.call] = c
	s.deadlines = append(s.deadlines, c)
}

func (s *sim) complete() {
	call := s.ds.PopDone()
	if call == nil {
		return // rounding: the next turn completes it
	}
	c := s.byCall[call]
	delete(s.byCall, call)
	c.over = true
	s.strategy.Release(c.ticket, false)
	s.rec.success(c.start, s.now)
}

func (s *sim) expire() {
	c := s.deadlines[0]
	c.over = true
	s.ds.Cancel(c.call)
	delete(s.byCall, c.call)
	s.strategy.Release(c.ticket, true)
	s.rec.failure(c.start)
}
