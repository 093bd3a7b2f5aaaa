package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
)

// policyName is the Policy of this package's errors.
const policyName = "pool"

// Balancing algorithms, the values of Options.Balance.
const (
	RoundRobin   = "round_robin"
	LeastRequest = "least_request"
	Random       = "random"
)

// ErrNoHealthyInstance is the sentinel of the error Pick returns when no
// instance is usable and panic mode does not apply.
var ErrNoHealthyInstance = errors.New("no healthy instance")

// Options configures a Pool. The configuration parts are taken as resolved
// by package config: zero values are not replaced by defaults, except where
// a field says so.
type Options struct {
	// Name is the upstream's name, used in errors and logs.
	Name string
	// Balance is round_robin, least_request or random. Default "" means
	// round_robin.
	Balance string
	// Health configures active health checks; nil means none (every
	// instance stays healthy).
	Health *config.Health
	// Outlier configures passive ejection and the panic threshold. Its zero
	// value ejects nothing and has no panic mode.
	Outlier config.Outlier
	// Client sends the default health checks. Default nil: a client of its
	// own with Health.Timeout that does not follow redirects, whose idle
	// connections Close closes.
	Client *http.Client
	// TLS configures the default client's connections to https://
	// instances; nil: Go's defaults.
	TLS *tls.Config
	// Check, when set, replaces the default health check (an HTTP GET where
	// a 2xx answer passes). It gets the instance's URL with Health.Path as
	// its path and a context that ends after Health.Timeout or when the pool
	// is closed; a nil error is a pass.
	Check func(ctx context.Context, u *url.URL) error
	// Clock times ejections. Default spillway.SystemClock.
	Clock spillway.Clock
	// Logger receives health and ejection transitions. Default slog.Default().
	Logger *slog.Logger
	// OnTransition, when set, receives the same transitions as Logger (the
	// gateway's event stream). It runs on the goroutine that made the change
	// (a health check, or the attempt that ejected or restored the instance),
	// possibly under the pool's lock: it must be quick, must not block and
	// must not call the pool.
	OnTransition func(Transition)
	// Rand returns a number in [0, 1); it draws the random and
	// least_request choices, the slow start's admissions and the health
	// interval jitter, and must be safe for concurrent use. Default
	// math/rand/v2.Float64.
	Rand func() float64
	// SlowStart is the window over which an instance that comes back (its
	// health check passes again, its ejection ends, Restore, or a reload
	// adds it) ramps up to its full share of the picks: its weight grows
	// linearly from SlowStartFloor to 1 (Envoy's slow_start_config with an
	// aggression of 1). Default 0: no ramp, it takes its full share at once.
	SlowStart time.Duration
}

// SlowStartFloor is the weight of an instance as its slow start begins: it
// gets some picks at once, so that it is seen to work.
const SlowStartFloor = 0.1

// slowStartTries bounds the draws of one Pick while instances ramp up: the
// last draw is taken even if it falls on a ramping instance again, so a
// pool whose instances all ramp together still picks in bounded time.
const slowStartTries = 4

// Transition is an instance's change of state, as Options.OnTransition
// receives it.
type Transition struct {
	// Instance is the instance's URL, as configured.
	Instance string
	// To is the state entered: "healthy", "unhealthy", "ejected" or
	// "restored" (back from an ejection).
	To string
	// For is how long the ejection lasts (To "ejected"), 0 otherwise.
	For time.Duration
}

// transition reports a change of in's state to Options.OnTransition.
func (p *Pool) transition(in *Instance, to string, d time.Duration) {
	if p.onTransition != nil {
		p.onTransition(Transition{Instance: in.raw, To: to, For: d})
	}
}

// InstanceStatus is one instance's state, as the admin API shows it.
type InstanceStatus struct {
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
	Ejected bool   `json:"ejected"`
	// Manual is set while the instance is ejected by hand (Pool.Eject).
	Manual   bool  `json:"manual,omitempty"`
	InFlight int64 `json:"in_flight"`
	// Weight is the instance's share of the picks relative to a fully
	// ramped one, in [SlowStartFloor, 1] (Options.SlowStart), and
	// RampingFor the time until it reaches 1; both are left out when it
	// is not ramping.
	Weight     float64 `json:"weight,omitempty"`
	RampingFor string  `json:"ramping_for,omitempty"`
}

// balancer is Options.Balance, parsed.
type balancer uint8

const (
	balanceRoundRobin balancer = iota
	balanceLeastRequest
	balanceRandom
)

// Pool is the set of instances of one upstream. Create it with New, call
// Start to run its health checks and Close to stop them.
type Pool struct {
	// rr is the round-robin counter; it is written by every Pick, so it has a
	// cache line of its own.
	rr atomic.Uint64
	_  [56]byte
	// unhealthy counts the instances that failed their health checks, and
	// ejectedSet those whose ejectedUntil is not 0 (ejected, or whose
	// ejection ended and was not cleared yet). While both are 0 every
	// instance is usable and Pick neither scans nor reads the clock.
	unhealthy  atomic.Int32
	ejectedSet atomic.Int32
	// ramping counts the instances whose rampFrom is not notRamping (in a
	// slow start, or whose ended slow start was not cleared yet). While it is 0,
	// Pick draws once and reads no clock for it.
	ramping atomic.Int32

	name      string
	balance   balancer
	instances []*Instance
	clock     spillway.Clock
	logger    *slog.Logger
	// onTransition is Options.OnTransition.
	onTransition func(Transition)
	rand         func() float64
	// errNone is preallocated: a pool that refuses allocates nothing.
	errNone *spillway.Error
	// slowStart is Options.SlowStart in nanoseconds.
	slowStart int64

	outlier    config.Outlier
	maxEjected int   // how many instances may be ejected at once
	maxN       int32 // the ejection count at which Ejection × n reaches MaxEjection

	// mu serializes ejections, so that the MaxEjected limit holds, and
	// guards cancel and checkerDone between Start and Close.
	mu sync.Mutex

	health      *config.Health
	check       func(ctx context.Context, u *url.URL) error
	transport   *http.Transport // the default client's, closed by Close; nil otherwise
	startOnce   sync.Once
	stopOnce    sync.Once
	cancel      context.CancelFunc
	checkerDone chan struct{} // closed when the checker goroutine returns; nil if none started
}

// New returns a pool of the given instance URLs (http or https), or an
// error naming what is invalid.
func New(instances []string, o Options) (*Pool, error) {
	if len(instances) == 0 {
		return nil, fmt.Errorf("pool %q: no instances", o.Name)
	}
	p := &Pool{
		name:         o.Name,
		clock:        spillway.ClockOrSystem(o.Clock),
		logger:       o.Logger,
		onTransition: o.OnTransition,
		rand:         o.Rand,
		outlier:      o.Outlier,
		health:       o.Health,
		check:        o.Check,
		slowStart:    int64(max(o.SlowStart, 0)),
		errNone:      &spillway.Error{Code: spillway.ReasonNoHealthyInstance, Policy: policyName, Name: o.Name, Err: ErrNoHealthyInstance},
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if p.rand == nil {
		p.rand = rand.Float64
	}
	switch o.Balance {
	case "", RoundRobin:
		p.balance = balanceRoundRobin
	case LeastRequest:
		p.balance = balanceLeastRequest
	case Random:
		p.balance = balanceRandom
	default:
		return nil, fmt.Errorf("pool %q: unknown balance %q (want round_robin, least_request or random)", o.Name, o.Balance)
	}
	if err := p.setOutlier(o.Outlier, len(instances)); err != nil {
		return nil, err
	}
	if err := p.setHealth(o); err != nil {
		return nil, err
	}
	p.instances = make([]*Instance, len(instances))
	for i, s := range instances {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("pool %q: instance %q: %w", o.Name, s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("pool %q: instance %q: want an http:// or https:// URL with a host", o.Name, s)
		}
		in := &Instance{URL: u, raw: s, pool: p, index: i}
		in.healthy.Store(true)
		in.rampFrom.Store(notRamping)
		if p.health != nil {
			in.healthURL = healthURL(u, p.health.Path)
		}
		p.instances[i] = in
	}
	return p, nil
}

// healthURL returns base with path appended to its path, which it makes
// absolute (url.JoinPath leaves it relative when base has no path).
func healthURL(base *url.URL, path string) *url.URL {
	u := base.JoinPath(path)
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
		u.RawPath = ""
	}
	return u
}

// setOutlier validates o and derives the ejection limits for n instances.
func (p *Pool) setOutlier(o config.Outlier, n int) error {
	switch {
	case o.MaxEjected < 0 || o.MaxEjected > 1:
		return fmt.Errorf("pool %q: outlier max_ejected must be within [0, 1], got %v", p.name, o.MaxEjected)
	case o.PanicThreshold < 0 || o.PanicThreshold > 1:
		return fmt.Errorf("pool %q: outlier panic_threshold must be within [0, 1], got %v", p.name, o.PanicThreshold)
	case o.ConsecutiveFailures < 0:
		return fmt.Errorf("pool %q: outlier consecutive_failures must be >= 0, got %d", p.name, o.ConsecutiveFailures)
	case o.ConsecutiveFailures > 0 && o.Ejection <= 0:
		return fmt.Errorf("pool %q: outlier ejection must be > 0, got %v", p.name, o.Ejection)
	}
	if o.MaxEjected > 0 {
		p.maxEjected = max(1, int(o.MaxEjected*float64(n)))
	}
	if o.ConsecutiveFailures > 0 {
		// A cap below one ejection means no growth: every ejection lasts Ejection.
		p.outlier.MaxEjection = max(o.MaxEjection, o.Ejection)
		p.maxN = int32(min((p.outlier.MaxEjection+o.Ejection-1)/o.Ejection, 1<<30))
	}
	return nil
}

// setHealth validates o.Health and sets up the default check.
func (p *Pool) setHealth(o Options) error {
	h := o.Health
	if h == nil {
		return nil
	}
	switch {
	case h.Interval <= 0:
		return fmt.Errorf("pool %q: health interval must be > 0, got %v", p.name, h.Interval)
	case h.Timeout <= 0:
		return fmt.Errorf("pool %q: health timeout must be > 0, got %v", p.name, h.Timeout)
	case h.UnhealthyAfter < 1:
		return fmt.Errorf("pool %q: health unhealthy_after must be >= 1, got %d", p.name, h.UnhealthyAfter)
	case h.HealthyAfter < 1:
		return fmt.Errorf("pool %q: health healthy_after must be >= 1, got %d", p.name, h.HealthyAfter)
	}
	if p.check != nil {
		return nil
	}
	client := o.Client
	if client == nil {
		p.transport = &http.Transport{
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     2*h.Interval + time.Second,
			TLSClientConfig:     o.TLS,
		}
		client = &http.Client{
			Transport: p.transport,
			Timeout:   h.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	p.check = httpCheck(client)
	return nil
}

// Name returns the upstream's name.
func (p *Pool) Name() string { return p.name }

// Instances returns the pool's instances in configuration order. The slice
// is shared: do not modify it.
func (p *Pool) Instances() []*Instance { return p.instances }

// Pick returns the instance for the next attempt, preferring one other than
// avoid (the previous attempt's instance; nil for a first attempt) when
// another candidate exists. The candidates are the usable instances, or all
// of them in panic mode. With no usable instance and no panic mode, it
// returns a *spillway.Error of Reason no_healthy_instance wrapping
// ErrNoHealthyInstance; its RetryAfter is set when every instance is healthy
// but ejected (the time until the first ejection ends).
func (p *Pool) Pick(avoid *Instance) (*Instance, error) {
	if avoid != nil && avoid.pool != p {
		avoid = nil
	}
	n := len(p.instances)
	if p.unhealthy.Load() == 0 && p.ejectedSet.Load() == 0 && p.ramping.Load() == 0 {
		return p.choose(true, 0, n, avoid), nil
	}
	var now int64
	if p.ejectedSet.Load() != 0 || p.ramping.Load() != 0 {
		now = p.clock.Nanotime()
	}
	usable := 0
	for _, in := range p.instances {
		if in.usable(now) {
			usable++
		}
	}
	// Every instance usable (only ramps, or ejections that ended): the
	// index computation of the common case serves.
	all := usable == n || float64(usable) < p.outlier.PanicThreshold*float64(n)
	if all {
		usable = n
	} else if usable == 0 {
		return nil, p.noneErr(now)
	}
	in := p.choose(all, now, usable, avoid)
	// Slow start: a ramping instance keeps a drawn pick with probability
	// its weight, and is drawn again otherwise, so that its share of the
	// picks is its weight's share of the candidates' total weight.
	for range slowStartTries - 1 {
		if w := in.weight(now); w >= 1 || p.rand() < w {
			break
		}
		in = p.choose(all, now, usable, avoid)
	}
	return in, nil
}

// choose balances over the m candidates: every instance when all is set,
// the usable ones otherwise. avoid is left out when it is a candidate and
// not the only one.
func (p *Pool) choose(all bool, now int64, m int, avoid *Instance) *Instance {
	skip := avoid
	if skip != nil && (m == 1 || (!all && !skip.usable(now))) {
		skip = nil
	}
	if skip != nil {
		m--
	}
	switch p.balance {
	case balanceRandom:
		return p.nth(all, now, skip, p.draw(m))
	case balanceLeastRequest:
		ja := p.draw(m)
		a := p.nth(all, now, skip, ja)
		if m < 2 {
			return a
		}
		// The second is drawn among the m-1 others.
		jb := p.draw(m - 1)
		if jb >= ja {
			jb++
		}
		b := p.nth(all, now, skip, jb)
		if b.inFlight.Load() < a.inFlight.Load() {
			return b
		}
		return a
	default:
		return p.nth(all, now, skip, int((p.rr.Add(1)-1)%uint64(m)))
	}
}

// draw returns a random index in [0, m).
func (p *Pool) draw(m int) int {
	return min(int(p.rand()*float64(m)), m-1)
}

// nth returns the j-th candidate (from 0), skip left out. When all is set
// it is an index computation; otherwise a scan of the usable instances,
// which, should health change under it, returns the last candidate it saw
// (or the first instance if it saw none): a choice made a moment earlier.
func (p *Pool) nth(all bool, now int64, skip *Instance, j int) *Instance {
	if all {
		if skip != nil && j >= skip.index {
			j++
		}
		return p.instances[j%len(p.instances)]
	}
	last := p.instances[0]
	for _, in := range p.instances {
		if in == skip || !in.usable(now) {
			continue
		}
		if j == 0 {
			return in
		}
		j--
		last = in
	}
	return last
}

// noneErr returns the error of a pool without usable instance at now.
func (p *Pool) noneErr(now int64) error {
	var soonest int64
	for _, in := range p.instances {
		if !in.healthy.Load() {
			return p.errNone
		}
		if u := in.ejectedUntil.Load(); u > now && (soonest == 0 || u < soonest) {
			soonest = u
		}
	}
	if soonest == 0 {
		return p.errNone
	}
	e := *p.errNone
	e.RetryAfter = time.Duration(soonest - now)
	return &e
}

// Status returns every instance's state, in configuration order.
func (p *Pool) Status() []InstanceStatus {
	now := p.clock.Nanotime()
	out := make([]InstanceStatus, len(p.instances))
	for i, in := range p.instances {
		out[i] = InstanceStatus{
			URL:      in.raw,
			Healthy:  in.healthy.Load(),
			Ejected:  in.ejected(now),
			Manual:   in.ejectedUntil.Load() == manualEjection,
			InFlight: in.inFlight.Load(),
		}
		if w, left := in.ramp(now); left > 0 {
			out[i].Weight, out[i].RampingFor = w, left.Round(time.Millisecond).String()
		}
	}
	return out
}

// EjectedCount returns how many instances are ejected now, for the
// spillway_outlier_ejections_active metric.
func (p *Pool) EjectedCount() int {
	if p.ejectedSet.Load() == 0 {
		return 0
	}
	now := p.clock.Nanotime()
	n := 0
	for _, in := range p.instances {
		if in.ejected(now) {
			n++
		}
	}
	return n
}

// Inherit carries over from old the state of the instances p shares with it
// (the same configured URL): health, ejection (its end, its count for the
// growth of the next one) and the count of failed attempts in a row, so
// that a reload changing the instance list or the pool's settings does not
// bring an ejected or unhealthy instance back. The counts of consecutive
// health check results start again from zero (only old's checker may read
// them), and without health checks in p every instance is healthy. Call it
// before p.Start and before p takes traffic; it returns the URLs of old
// that p does not have.
func (p *Pool) Inherit(old *Pool) (dropped []string) {
	byURL := make(map[string]*Instance, len(old.instances))
	for _, in := range old.instances {
		byURL[in.raw] = in
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	now := p.clock.Nanotime()
	for _, in := range p.instances {
		prev, ok := byURL[in.raw]
		if !ok {
			in.startRamp(now) // a reload added it
			continue
		}
		delete(byURL, in.raw)
		if p.health != nil && !prev.healthy.Load() {
			in.healthy.Store(false)
			p.unhealthy.Add(1)
		}
		in.consecFails.Store(prev.consecFails.Load())
		if from := prev.rampFrom.Load(); from != notRamping {
			in.startRamp(from)
		}
		in.ejections, in.lastUntil = prev.ejections, prev.lastUntil
		if u := prev.ejectedUntil.Load(); u != 0 {
			in.ejectedUntil.Store(u)
			p.ejectedSet.Add(1)
		}
	}
	for _, in := range old.instances {
		if _, gone := byURL[in.raw]; gone {
			dropped = append(dropped, in.raw)
		}
	}
	return dropped
}
