package gateway

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
)

// UpstreamView is one upstream as the runtime API shows it: its effective
// policies, keyed as in the configuration file, its instances and the live
// figures of its policies. It is the shape of GET /api/v1/upstreams/{name}.
type UpstreamView struct {
	Name      string                `json:"name"`
	Instances []pool.InstanceStatus `json:"instances"`
	Policies  PoliciesView          `json:"policies"`
	Live      LiveView              `json:"live"`
}

// PoliciesView is an upstream's effective configuration, every default
// resolved, under the file's key names. Durations are written as in the
// file (Go duration syntax), shares as fractions (0.5 for 50%).
type PoliciesView struct {
	Balance  string       `json:"balance"`
	Timeouts timeoutsView `json:"timeouts"`
	Retry    retryView    `json:"retry"`
	Breaker  breakerView  `json:"breaker"`
	Bulkhead bulkheadView `json:"bulkhead"`
	// Throttle is the client-side throttle, absent when none is configured.
	Throttle *throttleView `json:"throttle,omitempty"`
	// Hedge is the hedging of GET, HEAD and OPTIONS requests, absent when
	// none is configured.
	Hedge *hedgeView `json:"hedge,omitempty"`
	// Health is the active health check, absent when none is configured.
	Health        *healthView `json:"health,omitempty"`
	Outlier       outlierView `json:"outlier"`
	MaxReplayBody int64       `json:"max_replay_body"`
	// Shed is absent when the upstream sheds nothing.
	Shed      *shedView     `json:"shed,omitempty"`
	SlowStart slowStartView `json:"slow_start"`
}

type timeoutsView struct {
	Connect string `json:"connect"`
	Attempt string `json:"attempt"`
	Total   string `json:"total"`
}

type retryView struct {
	MaxAttempts   int         `json:"max_attempts"`
	Backoff       backoffView `json:"backoff"`
	On            []string    `json:"on"`
	Budget        budgetView  `json:"budget"`
	RetryAfterMax string      `json:"retry_after_max"`
}

type backoffView struct {
	Type       string  `json:"type"`
	Initial    string  `json:"initial"`
	Max        string  `json:"max"`
	Multiplier float64 `json:"multiplier"`
	Jitter     string  `json:"jitter"`
}

type budgetView struct {
	Ratio        float64 `json:"ratio"`
	Window       string  `json:"window"`
	MinPerSecond float64 `json:"min_per_second"`
}

type breakerView struct {
	Mode           string       `json:"mode"`
	Window         windowView   `json:"window"`
	MinCalls       int          `json:"min_calls"`
	FailureRate    float64      `json:"failure_rate"`
	SlowCall       slowCallView `json:"slow_call"`
	OpenFor        string       `json:"open_for"`
	MaxOpenFor     string       `json:"max_open_for"`
	HalfOpenProbes int          `json:"half_open_probes"`
}

// windowView writes size as the file does: a count for a count window, a
// duration for a time window.
type windowView struct {
	Type string `json:"type"`
	Size any    `json:"size"`
}

type slowCallView struct {
	Duration string  `json:"duration"`
	Rate     float64 `json:"rate"`
}

type bulkheadView struct {
	Adaptive      string `json:"adaptive,omitempty"`
	MinConcurrent int    `json:"min_concurrent,omitempty"`
	MaxConcurrent int    `json:"max_concurrent"`
	MaxWaiting    int    `json:"max_waiting"`
	MaxWait       string `json:"max_wait"`
}

type throttleView struct {
	K            float64 `json:"k"`
	Window       string  `json:"window"`
	MaxRejection float64 `json:"max_rejection"`
}

// hedgeView is hedge: as the file writes it: delay is "p95" (a quantile of
// the latency) or a duration.
type hedgeView struct {
	Delay string `json:"delay"`
	Max   int    `json:"max"`
}

type healthView struct {
	Path           string `json:"path"`
	Interval       string `json:"interval"`
	Timeout        string `json:"timeout"`
	UnhealthyAfter int    `json:"unhealthy_after"`
	HealthyAfter   int    `json:"healthy_after"`
}

type outlierView struct {
	ConsecutiveFailures int     `json:"consecutive_failures"`
	Ejection            string  `json:"ejection"`
	MaxEjection         string  `json:"max_ejection"`
	MaxEjected          float64 `json:"max_ejected"`
	PanicThreshold      float64 `json:"panic_threshold"`
}

// LiveView is what an upstream's policies hold now.
type LiveView struct {
	Breaker BreakerStatus `json:"breaker"`
	// Bulkhead is the slots in use and the requests waiting for one.
	Bulkhead bulkheadLive `json:"bulkhead"`
	// Throttle is the client-side throttle's window and the probability
	// with which it refuses a request now; absent when the upstream has
	// no throttle.
	Throttle *throttleLive `json:"throttle,omitempty"`
	// Shed counts the requests shed since the shedder was made; absent
	// when the upstream sheds nothing.
	Shed *shedLive `json:"shed,omitempty"`
	// BudgetLeft is how many retries the budget allows now; absent when
	// the upstream allows no retry.
	BudgetLeft *float64 `json:"budget_left,omitempty"`
	// Rates are the figures over the trailing window (UpstreamRates);
	// absent at the first read.
	Rates *UpstreamRates `json:"rates,omitempty"`
	// Hedge is the hedging policy's delay and counts; absent without hedge:.
	Hedge *hedgeLive `json:"hedge,omitempty"`
}

// hedgeLive is what an upstream's hedging policy holds now: the delay in
// use (absent while a learned delay has too few samples: no hedge is sent
// then), the hedges sent, won and refused by the retry budget since the
// policy was made.
type hedgeLive struct {
	Delay   string `json:"delay,omitempty"`
	Sent    uint64 `json:"sent"`
	Won     uint64 `json:"won"`
	Refused uint64 `json:"refused"`
}

type shedView struct {
	SheddableAt float64 `json:"sheddable_at"`
	DefaultAt   float64 `json:"default_at"`
}

type slowStartView struct {
	Window string `json:"window"`
}

// shedLive counts the requests shed, by class (critical ones never are).
type shedLive struct {
	Sheddable uint64 `json:"sheddable"`
	Default   uint64 `json:"default"`
}

type bulkheadLive struct {
	InUse    int    `json:"in_use"`
	Waiting  int    `json:"waiting"`
	Rejected uint64 `json:"rejected"`
	// Mode is "static" or the adaptive algorithm; Limit the limit now (an
	// adaptive one moves in [MinConcurrent, MaxConcurrent]).
	Mode          string `json:"mode"`
	Limit         int    `json:"limit"`
	MinConcurrent int    `json:"min_concurrent"`
	MaxConcurrent int    `json:"max_concurrent"`
}

// bulkheadNow is what b holds now.
func bulkheadNow(b *bulkhead.Bulkhead) bulkheadLive {
	return bulkheadLive{InUse: b.InFlight(), Waiting: b.Waiting(), Rejected: b.Rejected(),
		Mode: cmp.Or(string(b.Algorithm()), "static"), Limit: b.Limit(), MinConcurrent: b.MinConcurrent(), MaxConcurrent: b.MaxConcurrent()}
}

type throttleLive struct {
	RejectionProbability float64 `json:"rejection_probability"`
	// Requests and Accepts are the window's: refused requests count.
	Requests int64  `json:"requests"`
	Accepts  int64  `json:"accepts"`
	Rejected uint64 `json:"rejected"`
}

// Upstreams returns every upstream of the configuration in use, by name.
func (g *Gateway) Upstreams() []UpstreamView {
	t := g.table.Load()
	counts := g.metrics.upstreamCounts()
	out := make([]UpstreamView, 0, len(t.upstreams))
	for _, u := range t.upstreams {
		out = append(out, u.view(g.metrics.rates.upstreamRates(u.name, counts[u.name])))
	}
	g.metrics.rates.keep(func(key string) bool {
		name, ok := strings.CutPrefix(key, "upstream:")
		return !ok || t.upstreams[name] != nil
	})
	slices.SortFunc(out, func(a, b UpstreamView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Upstream returns the upstream named name; false when there is none.
func (g *Gateway) Upstream(name string) (UpstreamView, bool) {
	u, ok := g.table.Load().upstreams[name]
	if !ok {
		return UpstreamView{}, false
	}
	return u.view(g.metrics.rates.upstreamRates(name, g.metrics.upstreamCounts()[name])), true
}

func (u *upstream) view(rates *UpstreamRates) UpstreamView {
	snap := u.breaker.Snapshot()
	v := UpstreamView{
		Name:      u.name,
		Instances: u.pool.Status(),
		Policies:  policiesView(&u.cfg),
		Live: LiveView{
			Breaker:  breakerStatus(snap),
			Bulkhead: bulkheadNow(u.bulkhead),
			Rates:    rates,
		},
	}
	if u.shed != nil {
		v.Live.Shed = &shedLive{Sheddable: u.shed.Shed(spillway.PrioritySheddable), Default: u.shed.Shed(spillway.PriorityDefault)}
	}
	if u.budget != nil {
		left := u.budget.Remaining()
		v.Live.BudgetLeft = &left
	}
	if t := u.throttle; t != nil {
		reqs, accs := t.Counts()
		v.Live.Throttle = &throttleLive{RejectionProbability: t.RejectionProbability(), Requests: reqs, Accepts: accs,
			Rejected: t.Rejected()}
	}
	if h := u.hedge; h != nil {
		v.Live.Hedge = &hedgeLive{Sent: h.Sent(), Won: h.Won(), Refused: h.Refused()}
		if d, ok := h.Delay(); ok {
			v.Live.Hedge.Delay = dur(d)
		}
	}
	return v
}

// breakerStatus is the BreakerStatus of a breaker's snapshot.
func breakerStatus(snap breaker.Snapshot) BreakerStatus {
	s := BreakerStatus{State: snap.State.String(), FailureRate: snap.FailureRate}
	if snap.SlowStartLeft > 0 {
		s.SlowStartShare, s.SlowStartLeft = snap.SlowStartShare, snap.SlowStartLeft.Round(time.Millisecond).String()
	}
	return s
}

func policiesView(c *config.Upstream) PoliciesView {
	r, br := c.Retry, c.Breaker
	v := PoliciesView{
		Balance:  c.Balance,
		Timeouts: timeoutsView{Connect: dur(c.Timeouts.Connect), Attempt: dur(c.Timeouts.Attempt), Total: dur(c.Timeouts.Total)},
		Retry: retryView{
			MaxAttempts: r.MaxAttempts,
			Backoff: backoffView{Type: r.Backoff.Type, Initial: dur(r.Backoff.Initial), Max: dur(r.Backoff.Max),
				Multiplier: r.Backoff.Multiplier, Jitter: r.Backoff.Jitter},
			On:            slices.Clone(r.On),
			Budget:        budgetView{Ratio: r.Budget.Ratio, Window: dur(r.Budget.Window), MinPerSecond: r.Budget.MinPerSecond},
			RetryAfterMax: dur(r.RetryAfterMax),
		},
		Breaker: breakerView{
			Mode: br.Mode, MinCalls: br.MinCalls, FailureRate: br.FailureRate,
			Window:   windowView{Type: windowType(c), Size: br.Window.Size},
			SlowCall: slowCallView{Duration: dur(br.SlowCall.Duration), Rate: br.SlowCall.Rate},
			OpenFor:  dur(br.OpenFor), MaxOpenFor: dur(br.MaxOpenFor), HalfOpenProbes: br.HalfOpenProbes,
		},
		Bulkhead: bulkheadView{Adaptive: c.Bulkhead.Adaptive, MinConcurrent: adaptiveMin(c.Bulkhead), MaxConcurrent: c.Bulkhead.MaxConcurrent, MaxWaiting: c.Bulkhead.MaxWaiting, MaxWait: dur(c.Bulkhead.MaxWait)},
		Outlier: outlierView{ConsecutiveFailures: c.Outlier.ConsecutiveFailures, Ejection: dur(c.Outlier.Ejection),
			MaxEjection: dur(c.Outlier.MaxEjection), MaxEjected: c.Outlier.MaxEjected, PanicThreshold: c.Outlier.PanicThreshold},
		MaxReplayBody: c.MaxReplayBody,
		SlowStart:     slowStartView{Window: dur(c.SlowStart.Window)},
	}
	if sh := c.Shed; sh != nil {
		v.Shed = &shedView{SheddableAt: sh.SheddableAt, DefaultAt: sh.DefaultAt}
	}
	if v.Breaker.Window.Type == "time" {
		v.Breaker.Window.Size = dur(br.Window.Time)
	}
	if t := c.Throttle; t != nil {
		v.Throttle = &throttleView{K: t.K, Window: dur(t.Window), MaxRejection: t.MaxRejection}
	}
	if h := c.Hedge; h != nil {
		v.Hedge = &hedgeView{Delay: hedgeDelay(h), Max: h.Max}
	}
	if h := c.Health; h != nil {
		v.Health = &healthView{Path: h.Path, Interval: dur(h.Interval), Timeout: dur(h.Timeout),
			UnhealthyAfter: h.UnhealthyAfter, HealthyAfter: h.HealthyAfter}
	}
	return v
}

// hedgeDelay writes hedge.delay as the file does: p95, or a duration.
func hedgeDelay(h *config.Hedge) string {
	if h.Delay > 0 {
		return dur(h.Delay)
	}
	return "p" + strconv.FormatFloat(h.Quantile*100, 'f', -1, 64)
}

// dur writes d as the file does; "0s" for none.
func dur(d time.Duration) string { return d.String() }

// RouteView is one route as the runtime API shows it (GET /api/v1/routes).
type RouteView struct {
	Name string `json:"name"`
	// Upstream is absent for an async-only route.
	Upstream string `json:"upstream,omitempty"`
	Optional bool   `json:"optional"`
	// Enabled is false while an optional route is switched off
	// (Gateway.SetRoute).
	Enabled bool `json:"enabled"`
	Async   bool `json:"async"`
	// Fallback is the chain, in order: "upstream:NAME", "stale_cache" or
	// "static".
	Fallback []string `json:"fallback"`
	// Live are the figures over the trailing window (RouteRates); absent
	// at the first read.
	Live *RouteRates `json:"live,omitempty"`
	// RateLimit is the route's rate limit (rate_limit:); absent when none.
	RateLimit *RateLimitView `json:"rate_limit,omitempty"`
}

// Routes returns the routes of the configuration in use, in match order.
func (g *Gateway) Routes() []RouteView {
	t := g.table.Load()
	counts := g.metrics.routeCounts()
	out := make([]RouteView, 0, len(t.routes))
	for _, r := range t.routes {
		v := RouteView{Name: r.cfg.Name, Upstream: r.cfg.Upstream, Optional: r.cfg.Optional, Enabled: !r.off.Load(),
			Async: r.cfg.Async != nil, Fallback: make([]string, 0, len(r.cfg.Fallback)),
			Live: g.metrics.rates.routeRates(r.cfg.Name, counts[r.cfg.Name])}
		if r.limit != nil {
			v.RateLimit = r.limit.view()
		}
		for _, f := range r.cfg.Fallback {
			switch {
			case f.Upstream != "":
				v.Fallback = append(v.Fallback, "upstream:"+f.Upstream)
			case f.StaleCache != nil:
				v.Fallback = append(v.Fallback, "stale_cache")
			default:
				v.Fallback = append(v.Fallback, "static")
			}
		}
		out = append(out, v)
	}
	g.metrics.rates.keep(func(key string) bool {
		name, ok := strings.CutPrefix(key, "route:")
		return !ok || t.byName[name] != nil
	})
	return out
}

// adaptiveMin is min_concurrent where it means something: with adaptive.
func adaptiveMin(b config.Bulkhead) int {
	if b.Adaptive == "" {
		return 0
	}
	return b.MinConcurrent
}
