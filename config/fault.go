package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxFaultDelay bounds an injected delay (fault.delay.duration, a runtime
// fault's delay, a Spillway-Fault-Delay header): a drill rehearses slow
// upstreams, and an attempt held longer than a minute only holds a client
// connection and a bulkhead slot.
const MaxFaultDelay = time.Minute

// The checks of a fault's values, shared by the file (with the key's
// position) and the runtime API (with the field's name): each returns ""
// for a good value, else why not.

// CheckFaultPercent checks a fault's percent: 0 to 100.
func CheckFaultPercent(p float64) string {
	if !(p >= 0 && p <= 100) {
		return fmt.Sprintf("%s is not between 0 and 100", strconv.FormatFloat(p, 'f', -1, 64))
	}
	return ""
}

// CheckFaultDelay checks a fault's delay: more than 0, at most MaxFaultDelay.
func CheckFaultDelay(d time.Duration) string {
	switch {
	case d <= 0:
		return "must be more than 0"
	case d > MaxFaultDelay:
		return fmt.Sprintf("%s is more than %s", d, MaxFaultDelay)
	}
	return ""
}

// CheckFaultStatus checks a fault's abort status: a 4xx or 5xx code.
func CheckFaultStatus(s int) string {
	if s < 400 || s > 599 {
		return fmt.Sprintf("%d is not a 4xx or 5xx status (400-599)", s)
	}
	return ""
}

// faultPercent accepts 5, 5% or 0.5 (a percentage: 0.5 is half a percent,
// unlike the shares written elsewhere as 0.5 for 50 %).
func (d *decoder) faultPercent(f field, dst *float64) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%")), 64)
	if err != nil {
		d.errorf(f.node(), f.path, "%s: expected a percentage from 0 to 100, got %q", key(f.path), s)
		return
	}
	if msg := CheckFaultPercent(n); msg != "" {
		d.errorf(f.node(), f.path, "%s: %s", key(f.path), msg)
		return
	}
	*dst = n
}

// faultDelay accepts a duration of at most MaxFaultDelay.
func (d *decoder) faultDelay(f field, dst *time.Duration) {
	v := time.Duration(-1)
	if d.duration(f, &v, true); v < 0 {
		return
	}
	if msg := CheckFaultDelay(v); msg != "" {
		d.errorf(f.node(), f.path, "%s: %s", key(f.path), msg)
		return
	}
	*dst = v
}

// faultStatus accepts a 4xx or 5xx status.
func (d *decoder) faultStatus(f field, dst *int) {
	n := -1
	if d.integer(f, &n, 0); n < 0 {
		return
	}
	if msg := CheckFaultStatus(n); msg != "" {
		d.errorf(f.node(), f.path, "%s: %s", key(f.path), msg)
		return
	}
	*dst = n
}

// validateFault checks that each part of a route's fault says how often
// and what: neither has a default, so that a fault forgotten half-written
// does not abort every request.
func (d *decoder) validateFault(r *Route, rp, label string) {
	if dl := r.Fault.Delay; dl != nil {
		d.required(rp, "fault.delay", "percent", label, dl.Percent < 0)
		d.required(rp, "fault.delay", "duration", label, dl.Duration == 0)
	}
	if ab := r.Fault.Abort; ab != nil {
		d.required(rp, "fault.abort", "percent", label, ab.Percent < 0)
		d.required(rp, "fault.abort", "status", label, ab.Status == 0)
	}
}

// required reports the key k of the mapping sub of the route at rp
// missing when it is and the file did not write it (a value written and
// refused is reported already).
func (d *decoder) required(rp, sub, k, label string, missing bool) {
	if _, written := d.set[rp+"."+sub+"."+k]; missing && !written {
		d.errPath(rp+"."+sub, "%s: %s.%s is required", label, sub, k)
	}
}
