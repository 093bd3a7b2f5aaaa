package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/gateway/pool"
)

func printStatus(w io.Writer, st gateway.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tBREAKER\tFAILURES\tIN FLIGHT\tINSTANCES")
	for _, name := range slices.Sorted(maps.Keys(st.Upstreams)) {
		u := st.Upstreams[name]
		fmt.Fprintf(tw, "%s\t%s\t%.0f%%\t%d\t%s\n", name, u.Breaker.State, 100*u.Breaker.FailureRate, u.InFlight, instanceSummary(u.Instances))
	}
	_ = tw.Flush()
	if s := st.Store; s != nil {
		state := "connected to " + s.Server
		if !s.Connected {
			state = "disconnected"
		}
		fmt.Fprintf(w, "\nstore: %s, %d reconnects\n", state, s.Reconnects)
	}
	for _, name := range slices.Sorted(maps.Keys(st.Queues)) {
		q := st.Queues[name]
		fmt.Fprintf(w, "queue %s: %d pending (oldest %.0fs), %d in flight, %d dead letters\n",
			name, q.Pending, q.OldestPendingAgeSeconds, q.InFlight, q.DeadLetters)
	}
	if len(st.Overrides) > 0 {
		fmt.Fprintf(w, "\n%d runtime override(s) in force (spillway ctl overrides):\n", len(st.Overrides))
		printOverrides(w, st.Overrides)
	}
}

// instanceSummary counts the healthy and ejected instances.
func instanceSummary(is []pool.InstanceStatus) string {
	var healthy, ejected int
	for _, i := range is {
		if i.Healthy {
			healthy++
		}
		if i.Ejected {
			ejected++
		}
	}
	return fmt.Sprintf("%d/%d healthy, %d ejected", healthy, len(is), ejected)
}

func printUpstream(w io.Writer, v gateway.UpstreamView) {
	p, l := v.Policies, v.Live
	fmt.Fprintf(w, "%s\n", v.Name)
	fmt.Fprintf(w, "  breaker   %s (mode %s), failures %.0f%% of the window, opens at %.0f%%\n",
		l.Breaker.State, p.Breaker.Mode, 100*l.Breaker.FailureRate, 100*p.Breaker.FailureRate)
	limit, adaptive := l.Bulkhead.Limit, ""
	if limit == 0 { // a gateway that does not report its limit
		limit = p.Bulkhead.MaxConcurrent
	}
	if p.Bulkhead.Adaptive != "" {
		adaptive = fmt.Sprintf(" (%s limit, %d-%d)", p.Bulkhead.Adaptive, l.Bulkhead.MinConcurrent, l.Bulkhead.MaxConcurrent)
	}
	fmt.Fprintf(w, "  bulkhead  %d/%d in use%s, %d/%d waiting, %d rejected\n",
		l.Bulkhead.InUse, limit, adaptive, l.Bulkhead.Waiting, p.Bulkhead.MaxWaiting, l.Bulkhead.Rejected)
	retry := fmt.Sprintf("  retry     %d attempts", p.Retry.MaxAttempts)
	if l.BudgetLeft != nil {
		retry += fmt.Sprintf(", budget %.0f left", *l.BudgetLeft)
	}
	fmt.Fprintln(w, retry)
	if t := l.Throttle; t != nil && p.Throttle != nil {
		fmt.Fprintf(w, "  throttle  %.0f%% refused now (at most %.0f%%), %d of %d requests accepted in %s, %d rejected\n",
			100*t.RejectionProbability, 100*p.Throttle.MaxRejection, t.Accepts, t.Requests, p.Throttle.Window, t.Rejected)
	}
	printShedAndSlowStart(w, v)
	fmt.Fprintf(w, "  timeouts  connect %s, attempt %s, total %s\n", p.Timeouts.Connect, p.Timeouts.Attempt, p.Timeouts.Total)
	for _, i := range v.Instances {
		state := "healthy"
		switch {
		case i.Ejected && i.Manual:
			state = "ejected by hand"
		case i.Ejected:
			state = "ejected"
		case !i.Healthy:
			state = "unhealthy"
		}
		ramp := ""
		if i.RampingFor != "" {
			ramp = fmt.Sprintf(", slow start at %.0f%% for %s", 100*i.Weight, i.RampingFor)
		}
		fmt.Fprintf(w, "  instance  %s %s, %d in flight%s\n", i.URL, state, i.InFlight, ramp)
	}
}

// printShedAndSlowStart prints the requests an upstream's load shedder
// refused, by class, and the ramp of a breaker that has just closed; each
// only when the upstream has one.
func printShedAndSlowStart(w io.Writer, v gateway.UpstreamView) {
	if s, p := v.Live.Shed, v.Policies.Shed; s != nil && p != nil {
		fmt.Fprintf(w, "  shed      %d sheddable (at %.0f%% of the limit), %d default (at %.0f%%)\n",
			s.Sheddable, 100*p.SheddableAt, s.Default, 100*p.DefaultAt)
	}
	if b := v.Live.Breaker; b.SlowStartLeft != "" {
		fmt.Fprintf(w, "  slow start breaker admits %.0f%% of the calls, all in %s\n", 100*b.SlowStartShare, b.SlowStartLeft)
	}
}

func printRoutes(w io.Writer, l struct{ Routes []gateway.RouteView }) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tUPSTREAM\tOPTIONAL\tENABLED\tASYNC\tFALLBACK\tRATE LIMIT")
	for _, r := range l.Routes {
		up := r.Upstream
		if up == "" {
			up = "-"
		}
		fb := strings.Join(r.Fallback, " > ")
		if fb == "" {
			fb = "-"
		}
		rl := "-"
		if l := r.RateLimit; l != nil {
			rl = fmt.Sprintf("%s burst %d by %s (%d keys, %d refused)", l.Rate, l.Burst, l.Key, l.TrackedKeys, l.Rejected)
			rl += sharedLine(l.Shared)
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%t\t%s\t%s\n", r.Name, up, r.Optional, r.Enabled, r.Async, fb, rl)
	}
	_ = tw.Flush()
}

// sharedLine tells how a shared rate limit answers now: shared by the
// replicas, or on this one's share while NATS does not answer; "" for a
// local limit.
func sharedLine(s *gateway.SharedLimitView) string {
	switch {
	case s == nil:
		return ""
	case s.Active:
		return fmt.Sprintf(", shared by %d replicas", s.Replicas)
	}
	return fmt.Sprintf(", on its 1/%d share: NATS does not answer (%d fallbacks)", s.Replicas, s.Fallbacks)
}

func printOverrides(w io.Writer, os []gateway.Override) {
	if len(os) == 0 {
		fmt.Fprintln(w, "no runtime override: the file's configuration is in force")
		return
	}
	for _, o := range os {
		fmt.Fprintf(w, "%s  %s\n", o.At.Format(time.RFC3339), overrideLine(o))
	}
}

// overrideLine is what an override changed, who and how.
func overrideLine(o gateway.Override) string {
	what := "upstream " + o.Upstream
	if o.Route != "" {
		what = "route " + o.Route
	}
	return fmt.Sprintf("%s  %s by %s (%s): %s -> %s", what, o.What, o.Who, o.Call, keyValues(o.Before), keyValues(o.After))
}

func printCleared(w io.Writer, c struct {
	Cleared int `json:"cleared"`
	gateway.Changes
}) {
	fmt.Fprintf(w, "%d override(s) cleared: the file's configuration is in force\n", c.Cleared)
	printChanges(w, c.Changes)
}

// printReload is a reload's answer: its changes, then the settings that
// wait for a restart.
func printReload(w io.Writer, r admin.ReloadResult) {
	printChanges(w, r.Changes)
	if len(r.RestartRequired) > 0 {
		fmt.Fprintf(w, "restart required for: %s (changed in the file, not applied by a reload)\n", strings.Join(r.RestartRequired, ", "))
	}
}

func printChanges(w io.Writer, cs gateway.Changes) {
	applied, resets := cs.Lines()
	if len(applied) == 0 && len(resets) == 0 {
		fmt.Fprintln(w, "no change")
	}
	for _, l := range applied {
		fmt.Fprintln(w, "changed", l)
	}
	for _, l := range resets {
		fmt.Fprintln(w, "reset  ", l)
	}
	if k := cs.Overrides; k != nil {
		for _, o := range k.Kept {
			fmt.Fprintf(w, "override kept: %s\n", o.What)
		}
		for _, o := range k.Dropped {
			fmt.Fprintf(w, "override dropped: %s: %s\n", o.What, o.Reason)
		}
	}
}

// keyValues writes m as k=v pairs sorted by key.
func keyValues(m map[string]any) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
