package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/async"
)

// edgeKey is one numeric key of an upstream or a route: how to write it,
// the edge values to try, and how to read the value the built gateway
// runs with (nil: nothing outside the pool package shows it; the test then
// checks only that validate and serve accept and refuse alike).
type edgeKey struct {
	// yaml is the upstream's (or the route's) flow mapping with %s for the
	// value, e.g. "breaker: {min_calls: %s}".
	yaml string
	// route puts yaml in the route rather than the upstream.
	route bool
	// async: the key is an async route's; New needs a queue for it, so
	// only config and Check are compared, and the queue policy the worker
	// would get (async.QueuePolicy) must hold no value the queue reads as its
	// default (<= 0).
	async bool
	huge  string
	// eff reads the running value; want is what the docs promise for a
	// value the configuration accepted (c is the parsed upstream or route).
	eff  func(g *Gateway) any
	want func(cfg *config.Config) any
	// zero is what 0 runs as when the configuration accepts it (nil: the
	// configured value itself, 0).
	zero any
}

func upOf(g *Gateway) *upstream { return g.table.Load().upstreams["a"] }

func brk(f func(u *upstream) any) func(*Gateway) any {
	return func(g *Gateway) any { return f(upOf(g)) }
}

func cfgUp(f func(u *config.Upstream) any) func(*config.Config) any {
	return func(c *config.Config) any { return f(c.Upstreams["a"]) }
}

func retryOf(u *upstream) *retryPolicyView {
	p, err := newRetry(&u.cfg, u.budget, nil)
	if err != nil {
		panic(err)
	}
	c := p.Config()
	return &retryPolicyView{MaxAttempts: c.MaxAttempts, Initial: c.Initial, Max: c.Max, Multiplier: c.Multiplier, MaxRetryAfter: c.MaxRetryAfter}
}

type retryPolicyView struct {
	MaxAttempts   int
	Initial, Max  time.Duration
	Multiplier    float64
	MaxRetryAfter time.Duration
}

const (
	hugeInt      = "9223372036854775807"
	hugeDuration = "2562047h"
	hugeSize     = "9223372036854775807"
	hugeFloat    = "1e300"
)

var edgeKeys = []edgeKey{
	{yaml: "timeouts: {connect: %s}", huge: hugeDuration},
	{yaml: "timeouts: {attempt: %s, total: 2562047h}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().ProbeTimeout }),
		want: cfgUp(func(u *config.Upstream) any { return u.Timeouts.Attempt })},
	{yaml: "timeouts: {total: %s}", huge: hugeDuration,
		eff:  func(g *Gateway) any { return g.table.Load().routes[0].total },
		want: cfgUp(func(u *config.Upstream) any { return u.Timeouts.Total })},
	{yaml: "retry: {max_attempts: %s}", huge: hugeInt,
		eff:  brk(func(u *upstream) any { return retryOf(u).MaxAttempts }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.MaxAttempts })},
	{yaml: "retry: {backoff: {initial: %s, max: 2562047h}}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return retryOf(u).Initial }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.Backoff.Initial })},
	{yaml: "retry: {backoff: {max: %s}}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return retryOf(u).Max }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.Backoff.Max })},
	{yaml: "retry: {backoff: {multiplier: %s}}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { return retryOf(u).Multiplier }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.Backoff.Multiplier })},
	// ratio 0 alone: no retries earned by traffic, the floor only (the
	// retry package writes "none" as a negative ratio).
	{yaml: "retry: {budget: {ratio: %s}}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { return u.budget.Config().Ratio }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.Budget.Ratio }), zero: -1.0},
	{yaml: "retry: {budget: {window: %s}}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.budget.Config().Window }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.Budget.Window })},
	{yaml: "retry: {budget: {min_per_second: %s}}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { return u.budget.Config().MinPerSecond }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.Budget.MinPerSecond }), zero: -1.0},
	// ratio 0 and min_per_second 0 together: a budget that allows no
	// retry, so one attempt per request (the docs' "no retries").
	{yaml: "retry: {budget: {ratio: %[1]s, min_per_second: %[1]s}}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { return retryOf(u).MaxAttempts }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.MaxAttempts }), zero: 1},
	{yaml: "retry: {retry_after_max: %s}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return retryOf(u).MaxRetryAfter }),
		want: cfgUp(func(u *config.Upstream) any { return u.Retry.RetryAfterMax })},
	{yaml: "breaker: {window: {type: count, size: %s}, min_calls: 1}", huge: hugeInt,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().WindowSize }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.Window.Size })},
	{yaml: "breaker: {window: {type: time, size: %s}}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().WindowDuration }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.Window.Time })},
	{yaml: "breaker: {min_calls: %s}", huge: hugeInt,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().MinCalls }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.MinCalls })},
	{yaml: "breaker: {failure_rate: %s}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().FailureRate }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.FailureRate })},
	{yaml: "breaker: {slow_call: {duration: %s}}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().SlowCallDuration }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.SlowCall.Duration })},
	{yaml: "breaker: {slow_call: {duration: 1s, rate: %s}}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().SlowCallRate }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.SlowCall.Rate })},
	{yaml: "breaker: {open_for: %s, max_open_for: 2562047h}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().OpenFor }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.OpenFor })},
	{yaml: "breaker: {max_open_for: %s}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().MaxOpenFor }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.MaxOpenFor })},
	{yaml: "breaker: {half_open_probes: %s}", huge: hugeInt,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().HalfOpenProbes }),
		want: cfgUp(func(u *config.Upstream) any { return u.Breaker.HalfOpenProbes })},
	{yaml: "bulkhead: {max_concurrent: %s}", huge: hugeInt,
		eff:  brk(func(u *upstream) any { return u.bulkhead.Limit() }),
		want: cfgUp(func(u *config.Upstream) any { return u.Bulkhead.MaxConcurrent })},
	{yaml: "bulkhead: {max_waiting: %s}", huge: hugeInt,
		eff:  brk(func(u *upstream) any { return u.bulkhead.MaxWaiting() }),
		want: cfgUp(func(u *config.Upstream) any { return u.Bulkhead.MaxWaiting })},
	{yaml: "bulkhead: {max_wait: %s}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.bulkhead.MaxWait() }),
		want: cfgUp(func(u *config.Upstream) any { return u.Bulkhead.MaxWait })},
	{yaml: "shed: {sheddable_at: %s}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { sh, _ := u.shed.Thresholds(); return sh }),
		want: cfgUp(func(u *config.Upstream) any { return u.Shed.SheddableAt })},
	{yaml: "shed: {default_at: %s, sheddable_at: 1%%}", huge: hugeFloat,
		eff:  brk(func(u *upstream) any { _, d := u.shed.Thresholds(); return d }),
		want: cfgUp(func(u *config.Upstream) any { return u.Shed.DefaultAt })},
	// 0: no slow start, for the instances and for the breaker.
	{yaml: "slow_start: {window: %s}", huge: hugeDuration,
		eff:  brk(func(u *upstream) any { return u.breaker.Config().SlowStart }),
		want: cfgUp(func(u *config.Upstream) any { return u.SlowStart.Window })},
	{yaml: "health: {path: /h, interval: %s}", huge: hugeDuration},
	{yaml: "health: {path: /h, timeout: %s, interval: 2562047h}", huge: hugeDuration},
	{yaml: "health: {path: /h, unhealthy_after: %s}", huge: hugeInt},
	{yaml: "health: {path: /h, healthy_after: %s}", huge: hugeInt},
	{yaml: "outlier: {consecutive_failures: %s}", huge: hugeInt},
	{yaml: "outlier: {ejection: %s, max_ejection: 2562047h}", huge: hugeDuration},
	{yaml: "outlier: {max_ejection: %s}", huge: hugeDuration},
	{yaml: "outlier: {max_ejected: %s}", huge: hugeFloat},
	{yaml: "outlier: {panic_threshold: %s}", huge: hugeFloat},
	// 0 buffers nothing: spillwayhttp's "never buffer" is negative.
	{yaml: "max_replay_body: %s", huge: hugeSize,
		eff:  brk(func(u *upstream) any { return replayBody(&u.cfg) }),
		want: cfgUp(func(u *config.Upstream) any { return u.MaxReplayBody }), zero: int64(-1)},
	{yaml: "fallback: [{stale_cache: {ttl: %s}}]", route: true, huge: hugeDuration,
		eff: cacheCfg(func(c config.StaleCache) any { return c.TTL }), want: routeCache(func(c config.StaleCache) any { return c.TTL })},
	{yaml: "fallback: [{stale_cache: {serve_stale_for: %s}}]", route: true, huge: hugeDuration,
		eff: cacheCfg(func(c config.StaleCache) any { return c.ServeStaleFor }), want: routeCache(func(c config.StaleCache) any { return c.ServeStaleFor })},
	{yaml: "fallback: [{stale_cache: {max_entries: %s}}]", route: true, huge: hugeInt,
		eff: cacheCfg(func(c config.StaleCache) any { return c.MaxEntries }), want: routeCache(func(c config.StaleCache) any { return c.MaxEntries })},
	{yaml: "fallback: [{stale_cache: {max_bytes: %s}}]", route: true, huge: hugeSize,
		eff: cacheCfg(func(c config.StaleCache) any { return c.MaxBytes }), want: routeCache(func(c config.StaleCache) any { return c.MaxBytes })},
	{yaml: "fallback: [{stale_cache: {max_entry_bytes: %s}}]", route: true, huge: hugeSize,
		eff: cacheCfg(func(c config.StaleCache) any { return c.MaxEntryBytes }), want: routeCache(func(c config.StaleCache) any { return c.MaxEntryBytes })},
	{yaml: "timeout: %s", route: true, huge: hugeDuration,
		eff:  func(g *Gateway) any { return g.table.Load().routes[0].total },
		want: func(c *config.Config) any { return c.Routes[0].Timeout }},
	{yaml: "async: {max_attempts: %s}", route: true, async: true, huge: hugeInt},
	{yaml: "async: {retention: %s}", route: true, async: true, huge: hugeDuration},
	{yaml: "async: {max_body: %s}", route: true, async: true, huge: hugeSize},
	{yaml: "async: {concurrency: %s}", route: true, async: true, huge: hugeInt},
	{yaml: "async: {backoff: {initial: %s, max: 2562047h}}", route: true, async: true, huge: hugeDuration},
	{yaml: "async: {backoff: {max: %s}}", route: true, async: true, huge: hugeDuration},
	{yaml: "async: {backoff: {multiplier: %s}}", route: true, async: true, huge: hugeFloat},
}

// checkAsync: Check accepts what config accepted, and the worker's queue
// policy carries every value as written (the queue reads <= 0 as its
// default).
func checkAsync(t *testing.T, cfg *config.Config) {
	t.Helper()
	if _, err := Check(cfg); err != nil {
		requirePlaced(t, "Check", err)
		return
	}
	a := cfg.Routes[0].Async
	p := async.QueuePolicy(a)
	if p.MaxAttempts <= 0 || p.Retention <= 0 || p.Concurrency <= 0 || p.Backoff.Initial <= 0 || p.Backoff.Max <= 0 || p.Backoff.Multiplier < 1 || a.MaxBody <= 0 {
		t.Errorf("the queue would run a default for %+v (max_body %d)", p, a.MaxBody)
	}
}

func cacheCfg(f func(config.StaleCache) any) func(*Gateway) any {
	return func(g *Gateway) any { return f(g.table.Load().routes[0].cache.cfg) }
}

func routeCache(f func(config.StaleCache) any) func(*config.Config) any {
	return func(c *config.Config) any { return f(*c.Routes[0].Fallback[0].StaleCache) }
}

// edgeConfig writes a configuration whose upstream a (or route r) sets
// k to v.
func edgeConfig(k edgeKey, v string) string {
	set := k.yaml
	if strings.Contains(set, "%") {
		set = fmt.Sprintf(set, v)
	}
	up, rt := "instances: [http://127.0.0.1:1]", "name: r, upstream: a"
	if k.route {
		rt += ", " + set
	} else {
		up += ", " + set
	}
	return "upstreams:\n  a: {" + up + "}\nroutes:\n  - {" + rt + "}\n"
}

// TestValidateAgreesWithServe tries 0, a negative value, a huge one and an
// empty one for every numeric key of an upstream and of a stale cache: the
// configuration refuses the value at its position, or Check (what spillway
// validate runs) and New (what serve runs) both refuse it at its position,
// or both accept it and the policy built runs with what the docs promise:
// the value written, or for 0 the documented meaning, never a default.
func TestValidateAgreesWithServe(t *testing.T) {
	for _, k := range edgeKeys {
		for _, v := range []string{"0", "-1", k.huge, `""`} {
			t.Run(fmt.Sprintf(k.yaml, v), func(t *testing.T) {
				cfg, _, err := config.Parse("t.yaml", []byte(edgeConfig(k, v)), nil)
				if err != nil {
					requirePlaced(t, "config", err)
					return
				}
				if k.async {
					checkAsync(t, cfg)
					return
				}
				_, checkErr := Check(cfg)
				g, newErr := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if newErr == nil {
					defer g.Close()
				}
				if (checkErr == nil) != (newErr == nil) {
					t.Fatalf("validate and serve disagree: Check: %v; New: %v", checkErr, newErr)
				}
				if checkErr != nil {
					requirePlaced(t, "Check", checkErr)
					return
				}
				if k.eff == nil {
					return
				}
				want := k.want(cfg)
				if v == "0" && k.zero != nil {
					want = k.zero
				}
				if got := k.eff(g); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("runs with %v, the docs promise %v", got, want)
				}
			})
		}
	}
}

// requirePlaced fails unless err is a list of problems at a position.
func requirePlaced(t *testing.T, who string, err error) {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("%s refused without a position: %v", who, err)
	}
	for _, e := range errs {
		if e.Line < 1 || e.Col < 1 || e.Path == "" {
			t.Fatalf("%s refused without a position: %#v", who, e)
		}
	}
}

// The two disagreements issue 10 found, named: a budget of 0 and 0 must
// mean no retries in serve too, and min_calls 0 must not run as 20.
func TestValidateAgreesWithServeKnownCases(t *testing.T) {
	cfg, _, err := config.Parse("t.yaml", []byte(edgeConfig(edgeKey{yaml: "retry: {budget: {ratio: 0, min_per_second: 0}}"}, "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("serve refuses what validate accepts: %v", err)
	}
	defer g.Close()
	if n := retryOf(upOf(g)).MaxAttempts; n != 1 {
		t.Errorf("a budget of 0 and 0 runs %d attempts, want 1 (no retries)", n)
	}
	if _, _, err := config.Parse("t.yaml", []byte(edgeConfig(edgeKey{yaml: "breaker: {min_calls: 0, failure_rate: 0%}"}, "")), nil); err == nil {
		t.Error("min_calls 0 and failure_rate 0% load: the breaker would run with its defaults, 20 calls and 50 %")
	}
}

// TestApplyBudgetAllowsNoRetry: a reload into a budget of 0 and 0 runs one
// attempt per request, and a reload out of it gets a budget again.
func TestApplyBudgetAllowsNoRetry(t *testing.T) {
	parse := func(set string) *config.Config {
		cfg, _, err := config.Parse("t.yaml", []byte(edgeConfig(edgeKey{yaml: set}, "")), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	g, err := New(parse("retry: {max_attempts: 3}"), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Apply(parse("retry: {max_attempts: 3, budget: {ratio: 0, min_per_second: 0}}")); err != nil {
		t.Fatal(err)
	}
	if up := upOf(g); up.budget != nil || retryOf(up).MaxAttempts != 1 {
		t.Fatalf("after the reload: budget %v, %d attempts; want none, 1", up.budget, retryOf(up).MaxAttempts)
	}
	// The budget gauge of an upstream without a budget reads 0.
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "spillway_retry_budget_remaining" {
			found = len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetGauge().GetValue() == 0
		}
	}
	if !found {
		t.Error("spillway_retry_budget_remaining is not 0 for an upstream that allows no retry")
	}
	if _, err := g.Apply(parse("retry: {max_attempts: 3}")); err != nil {
		t.Fatal(err)
	}
	if up := upOf(g); up.budget == nil || retryOf(up).MaxAttempts != 3 {
		t.Fatalf("back to the default budget: budget %v, %d attempts; want one, 3", up.budget, retryOf(up).MaxAttempts)
	}
}
