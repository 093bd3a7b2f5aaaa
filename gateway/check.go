package gateway

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway/config"
)

// Check builds everything New would build for cfg (every upstream's
// breaker, retry budget and policy, bulkhead, pool and transports, every
// route and its fallback chain) through the same constructors, then
// releases it: it listens on nothing, starts no health check or queue
// worker, leaves no goroutine behind, and needs no queue for async routes. It returns the error
// New would return, or the warnings of the policies built, each placed at
// the key it is about (see config.Config.WarningAt). spillway validate
// and serve call it, so that validate accepts exactly what serve runs.
func Check(cfg *config.Config) ([]config.Warning, error) {
	o := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), check: true}
	g := &Gateway{opts: o, reg: o.Registry}
	m, err := newMetrics(o.Registry, g)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	t, _, err := g.build(cfg, nil)
	if pe, ok := errors.AsType[*placedError](err); ok {
		path := pe.path
		if strings.HasPrefix(path, "$.upstreams.") {
			path += keyOfField(pe.Error())
		}
		w := cfg.WarningAt(path, pe.Error())
		return nil, config.Errors{{File: w.File, Line: w.Line, Col: w.Col, Path: w.Path, Msg: w.Msg}}
	}
	if err != nil {
		return nil, err
	}
	defer t.closeUnshared(nil)
	var warns []config.Warning
	for _, name := range slices.Sorted(maps.Keys(t.upstreams)) {
		warns = append(warns, policyWarnings(cfg, t.upstreams[name])...)
	}
	return warns, nil
}

// policyWarnings returns the Warnings of up's breaker, retry policy and throttle,
// as they were built, each at the key its message names.
func policyWarnings(cfg *config.Config, up *upstream) []config.Warning {
	u := &up.cfg
	var msgs []string
	// A breaker in a manual mode judges no rate: its thresholds cannot
	// misbehave.
	if m := u.Breaker.Mode; m == "closed" || m == "metrics_only" || m == "" {
		for _, w := range u.BreakerConfig().Warnings() {
			msgs = append(msgs, strings.TrimPrefix(w, "breaker: "))
		}
	}
	nb := len(msgs) // the breaker's, then the retry policy's
	if rc, err := u.RetryConfig(up.budget); err == nil {
		for _, w := range rc.Warnings() {
			// The gateway always passes the multiplier (2 by default): it
			// is worth a warning only when the file wrote it.
			if strings.HasPrefix(w, "Multiplier") && !written(cfg, u.Name, ".retry.backoff.multiplier") {
				continue
			}
			msgs = append(msgs, w)
		}
	}
	warns := make([]config.Warning, 0, len(msgs))
	for i, msg := range msgs {
		sub := keyOfField(msg)
		if sub == "" {
			sub = ".breaker"
			if i >= nb {
				sub = ".retry"
			}
		}
		warns = append(warns, cfg.WarningAt("$.upstreams."+u.Name+sub, "upstreams."+u.Name+sub+": "+msg))
	}
	if tc, ok := u.ThrottleConfig(); ok {
		for _, msg := range tc.Warnings() {
			msg = strings.TrimPrefix(msg, "throttle: ")
			sub := ".throttle.k"
			if strings.HasPrefix(msg, "MaxRejectionRate") {
				sub = ".throttle.max_rejection"
			}
			warns = append(warns, cfg.WarningAt("$.upstreams."+u.Name+sub, "upstreams."+u.Name+sub+": "+msg))
		}
	}
	return warns
}

// written reports whether the file set sub of upstream name, in the
// upstream or in defaults:.
func written(cfg *config.Config, name, sub string) bool {
	p := cfg.WarningAt("$.upstreams."+name+sub, "").Path
	return p == "$.upstreams."+name+sub || p == "$.defaults"+sub
}

// fieldKeys maps the policies' Go field names, as their warnings name
// them, to the configuration keys they come from; the first field a
// message names places it.
var fieldKeys = []struct{ field, key string }{
	{"MinCalls", ".breaker.min_calls"},
	{"FailureRate", ".breaker.failure_rate"},
	{"SlowCallRate", ".breaker.slow_call.rate"},
	{"SlowCallDuration", ".breaker.slow_call.duration"},
	{"WindowSize", ".breaker.window.size"},
	{"WindowDuration", ".breaker.window.size"},
	{"MaxOpenFor", ".breaker.max_open_for"},
	{"OpenFor", ".breaker.open_for"},
	{"HalfOpenProbes", ".breaker.half_open_probes"},
	{"Multiplier", ".retry.backoff.multiplier"},
	{"MaxAttempts", ".retry.max_attempts"},
	{"MaxRetryAfter", ".retry.retry_after_max"},
	{"Initial", ".retry.backoff.initial"},
	{"budget", ".retry.budget"},
	{"MinConcurrent", ".bulkhead.min_concurrent"},
	{"Adaptive.Algorithm", ".bulkhead.adaptive"},
	{"throttle: Window", ".throttle.window"},
	{"MaxConcurrent", ".bulkhead.max_concurrent"},
	{"MaxWaiting", ".bulkhead.max_waiting"},
	{"MaxWait ", ".bulkhead.max_wait"},
}

// keyOfField returns the key (like ".breaker.min_calls") of the first
// field msg names, "" when it names none.
func keyOfField(msg string) string {
	best, at := "", len(msg)
	for _, f := range fieldKeys {
		if i := strings.Index(msg, f.field); i >= 0 && i < at {
			best, at = f.key, i
		}
	}
	return best
}

// placedError is a build failure of the upstream or route at path (a YAML
// path): Check reports it at the position the file wrote that key.
type placedError struct {
	path string
	err  error
}

func (e *placedError) Error() string { return e.err.Error() }
func (e *placedError) Unwrap() error { return e.err }
