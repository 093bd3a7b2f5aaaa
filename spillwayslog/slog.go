// Package spillwayslog logs Spillway's policy events with log/slog, rate
// limiting the ones that come in storms.
//
// # Model
//
// An Observer is a spillway.Observer: pass it as the Observer of the
// pipelines (Policies.Observer reaches their policies) or policies whose
// decisions you want in the logs. Each event kind has a level
// and a message:
//
//	EventTransition  Warn   "circuit breaker state changed"  policy, name, from, to
//	EventFallback    Info   "fallback served"                policy, name, fallback, error
//	EventRetry       Debug  "retrying"                       policy, name, attempt, delay, error
//	EventRejection   Debug  "call rejected"                  policy, name, reason (rate limited)
//	EventTimeout     Debug  "call timed out"                 policy, name, reason, timeout (rate limited)
//	EventHedge       Debug  "hedge sent"                     policy, name, attempt, delay (rate limited)
//	EventHedgeWon    Debug  "hedge won"                      policy, name, attempt, duration (rate limited)
//
// EventAttempt is not logged: one line per call is a job for metrics
// (spillwayprom, spillwayotel). Transitions are rare and always matter, so
// they are never limited. Rejections and timeouts arrive in storms exactly
// when a downstream fails, and hedges are a steady share of the calls by
// design (about 5 % with a p95 delay: the policy doing its job, not news,
// hence Debug for a hedge sent and for one that won alike), so each
// (event kind, policy, name, reason) key logs at most
// Options.MaxPerInterval lines per Options.Interval (a timeout's reason is
// deadline_exceeded, a hedge has none). A key's window starts at its first
// event; the first event after the window has passed starts the next one
// and first logs, at the same level, how many lines the last window
// suppressed ("rejections suppressed", "timeouts suppressed", "hedges
// suppressed" or "hedge wins suppressed", with policy, name, reason when
// there is one, suppressed and interval). Nothing runs in the background: a window that no
// later event closes keeps its count until Flush.
//
// Every line is logged with the event's Context (context.Background for a
// breaker's transitions, which belong to no call), so a handler can add the
// call's trace id; the suppression summaries belong to no call either.
//
// # Defaults
//
// The zero Options log at most 10 lines per key per 10 s, on
// spillway.SystemClock.
//
// # Concurrency and cost
//
// An Observer is safe for concurrent use and starts no goroutine. An event
// whose level the logger does not enable costs the handler's Enabled check
// and nothing else, the rate limiter included. A limited event takes its
// key's mutex (never held while logging) after a lock-free map lookup; the
// first event of a key copies the map of keys. Lines are built with
// slog.Logger.LogAttrs.
package spillwayslog

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// Defaults of the zero Options.
const (
	DefaultMaxPerInterval = 10
	DefaultInterval       = 10 * time.Second
)

// Options configures an Observer. The zero value is valid.
type Options struct {
	// MaxPerInterval is how many rejection, timeout or hedge lines one
	// (event kind, policy, name, reason) key logs per Interval. Default DefaultMaxPerInterval
	// (10); values below 1 mean the default.
	MaxPerInterval int
	// Interval is the length of a key's window. Default DefaultInterval
	// (10s); values below 1ns mean the default.
	Interval time.Duration
	// Clock times the windows. Default spillway.SystemClock.
	Clock spillway.Clock
}

// Observer logs policy events to a *slog.Logger (see the package
// documentation). Make one with New.
type Observer struct {
	l        *slog.Logger
	max      int
	interval time.Duration
	clock    spillway.Clock

	// windows maps a limited key to its window; it is replaced, never
	// modified, under windowsMu.
	windows   atomic.Pointer[map[limitKey]*window]
	windowsMu sync.Mutex
}

type limitKey struct {
	kind         spillway.EventKind
	policy, name string
	reason       spillway.Reason
}

// window is one key's current rate-limiting window; mu guards its fields.
type window struct {
	mu         sync.Mutex
	start      int64 // clock reading at the window's first event
	logged     int
	suppressed int
	summary    string // the summary's message
}

// New returns an Observer that logs to l (slog.Default() when nil).
func New(l *slog.Logger, opts Options) *Observer {
	if l == nil {
		l = slog.Default()
	}
	if opts.MaxPerInterval < 1 {
		opts.MaxPerInterval = DefaultMaxPerInterval
	}
	if opts.Interval < 1 {
		opts.Interval = DefaultInterval
	}
	o := &Observer{l: l, max: opts.MaxPerInterval, interval: opts.Interval, clock: spillway.ClockOrSystem(opts.Clock)}
	o.windows.Store(&map[limitKey]*window{})
	return o
}

// Observe logs e. It implements spillway.Observer; attempts and unknown
// kinds are not logged.
func (o *Observer) Observe(e spillway.Event) {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	switch e.Kind {
	case spillway.EventTransition:
		o.l.LogAttrs(ctx, slog.LevelWarn, "circuit breaker state changed",
			slog.String("policy", e.Policy), slog.String("name", e.Name),
			slog.String("from", e.From), slog.String("to", e.To))
	case spillway.EventFallback:
		o.l.LogAttrs(ctx, slog.LevelInfo, "fallback served",
			slog.String("policy", e.Policy), slog.String("name", e.Name),
			slog.String("fallback", e.Fallback), errorAttr(e.Err))
	case spillway.EventRetry:
		o.l.LogAttrs(ctx, slog.LevelDebug, "retrying",
			slog.String("policy", e.Policy), slog.String("name", e.Name),
			slog.Int("attempt", e.Attempt), slog.Duration("delay", e.Delay), errorAttr(e.Err))
	case spillway.EventRejection:
		if o.allow(ctx, e, e.Reason, "rejections suppressed") {
			o.l.LogAttrs(ctx, slog.LevelDebug, "call rejected",
				slog.String("policy", e.Policy), slog.String("name", e.Name),
				slog.String("reason", string(e.Reason)))
		}
	case spillway.EventTimeout:
		if o.allow(ctx, e, spillway.ReasonDeadlineExceeded, "timeouts suppressed") {
			o.l.LogAttrs(ctx, slog.LevelDebug, "call timed out",
				slog.String("policy", e.Policy), slog.String("name", e.Name),
				slog.String("reason", string(spillway.ReasonDeadlineExceeded)), slog.Duration("timeout", e.Duration))
		}
	case spillway.EventHedge:
		if o.allow(ctx, e, "", "hedges suppressed") {
			o.l.LogAttrs(ctx, slog.LevelDebug, "hedge sent",
				slog.String("policy", e.Policy), slog.String("name", e.Name),
				slog.Int("attempt", e.Attempt), slog.Duration("delay", e.Delay))
		}
	case spillway.EventHedgeWon:
		if o.allow(ctx, e, "", "hedge wins suppressed") {
			o.l.LogAttrs(ctx, slog.LevelDebug, "hedge won",
				slog.String("policy", e.Policy), slog.String("name", e.Name),
				slog.Int("attempt", e.Attempt), slog.Duration("duration", e.Duration))
		}
	}
}

// errorAttr is the error attribute, or the empty Attr (which handlers
// ignore) for a nil err.
func errorAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("error", err.Error())
}

// allow reports whether a limited Debug line of e's key (with reason) may
// be logged now, logging the last window's summary first when this event
// starts a new window. A line the logger would drop anyway is not counted.
func (o *Observer) allow(ctx context.Context, e spillway.Event, reason spillway.Reason, summary string) bool {
	if !o.l.Enabled(ctx, slog.LevelDebug) {
		return false
	}
	k := limitKey{kind: e.Kind, policy: e.Policy, name: e.Name, reason: reason}
	now := o.clock.Nanotime()
	w := o.window(k, now, summary)
	w.mu.Lock()
	suppressed := 0
	if time.Duration(now-w.start) >= o.interval {
		suppressed = w.suppressed
		w.start, w.logged, w.suppressed = now, 0, 0
	}
	ok := w.logged < o.max
	if ok {
		w.logged++
	} else {
		w.suppressed++
	}
	w.mu.Unlock()
	if suppressed > 0 {
		o.logSummary(context.Background(), k, summary, suppressed)
	}
	return ok
}

// window returns k's window, creating it, started at now, on k's first event.
func (o *Observer) window(k limitKey, now int64, summary string) *window {
	if w, ok := (*o.windows.Load())[k]; ok {
		return w
	}
	o.windowsMu.Lock()
	defer o.windowsMu.Unlock()
	cur := *o.windows.Load()
	if w, ok := cur[k]; ok {
		return w
	}
	w := &window{start: now, summary: summary}
	next := make(map[limitKey]*window, len(cur)+1)
	for key, v := range cur {
		next[key] = v
	}
	next[k] = w
	o.windows.Store(&next)
	return w
}

func (o *Observer) logSummary(ctx context.Context, k limitKey, msg string, suppressed int) {
	reason := slog.Attr{} // a hedge has no reason; handlers drop the empty Attr
	if k.reason != "" {
		reason = slog.String("reason", string(k.reason))
	}
	o.l.LogAttrs(ctx, slog.LevelDebug, msg,
		slog.String("policy", k.policy), slog.String("name", k.name), reason,
		slog.Int("suppressed", suppressed), slog.Duration("interval", o.interval))
}

// Flush logs the summary of every window that has suppressed lines since
// its last summary, without waiting for the window to pass, for example when
// the program stops. The windows themselves go on.
func (o *Observer) Flush(ctx context.Context) {
	for k, w := range *o.windows.Load() {
		w.mu.Lock()
		suppressed := w.suppressed
		w.suppressed = 0
		w.mu.Unlock()
		if suppressed > 0 {
			o.logSummary(ctx, k, w.summary, suppressed)
		}
	}
}
