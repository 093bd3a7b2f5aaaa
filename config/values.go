package config

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The setters below decode one scalar field into dst, leaving dst as it
// was (the inherited or default value) and reporting the problem when the
// value does not parse.

func (d *decoder) str(f field, dst *string) {
	if s, ok := d.scalar(f); ok {
		*dst = s
	}
}

func (d *decoder) boolean(f field, dst *bool) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	switch strings.ToLower(s) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		d.errorf(f.node(), f.path, "%s: expected true or false, got %q", key(f.path), s)
	}
}

// integer accepts an integer of at least lo.
func (d *decoder) integer(f field, dst *int, lo int) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	switch {
	case err != nil:
		d.errorf(f.node(), f.path, "%s: expected an integer, got %q", key(f.path), s)
	case n < lo:
		d.errorf(f.node(), f.path, "%s: %d is less than %d", key(f.path), n, lo)
	default:
		*dst = n
	}
}

// number accepts a finite number of at least lo.
func (d *decoder) number(f field, dst *float64, lo float64) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	n, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(n) || math.IsInf(n, 0):
		d.errorf(f.node(), f.path, "%s: expected a number, got %q", key(f.path), s)
	case n < lo:
		d.errorf(f.node(), f.path, "%s: %s is less than %s", key(f.path), s, strconv.FormatFloat(lo, 'f', -1, 64))
	default:
		*dst = n
	}
}

// status accepts an HTTP status code.
func (d *decoder) status(f field, dst *int) {
	var n int
	before := len(d.errs)
	d.integer(f, &n, 0)
	if len(d.errs) > before {
		return
	}
	if n < 100 || n > 599 {
		d.errorf(f.node(), f.path, "%s: %d is not an HTTP status (100-599)", key(f.path), n)
		return
	}
	*dst = n
}

// duration accepts a Go duration (250ms, 2s, 5m, 1h30m) or 0; when
// positive is set, 0 is refused too.
func (d *decoder) duration(f field, dst *time.Duration, positive bool) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	v, err := parseDuration(s)
	switch {
	case err != "":
		d.errorf(f.node(), f.path, "%s: %s", key(f.path), err)
	case v < 0:
		d.errorf(f.node(), f.path, "%s: %s is negative", key(f.path), s)
	case v == 0 && positive:
		d.errorf(f.node(), f.path, "%s: must be more than 0", key(f.path))
	default:
		*dst = v
	}
}

func parseDuration(s string) (time.Duration, string) {
	if s == "0" {
		return 0, ""
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, "duration " + strconv.Quote(s) + " needs a unit, like " + s + "s or " + s + "ms"
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, "invalid duration " + strconv.Quote(s) + " (write 250ms, 2s, 5m, 1h30m)"
	}
	return v, ""
}

// percent accepts 50% or a fraction 0.5, and stores the fraction; it must
// lie in [0%, 100%].
func (d *decoder) percent(f field, dst *float64) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	t := strings.TrimSpace(s)
	isPct := strings.HasSuffix(t, "%")
	n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		d.errorf(f.node(), f.path, "%s: expected a percentage like 50%% or 0.5, got %q", key(f.path), s)
		return
	}
	if isPct {
		n /= 100
	}
	if n < 0 || n > 1 {
		hint := ""
		if !isPct && n <= 100 {
			hint = " (a plain number is a fraction: write " + s + "% for a percentage)"
		}
		d.errorf(f.node(), f.path, "%s: %s is not between 0%% and 100%%%s", key(f.path), s, hint)
		return
	}
	*dst = n
}

// rate accepts a percentage above 0 %: a share that trips a breaker, for
// which 0 % would trip on calls that all succeeded, or a throttle's highest
// rejection rate, at which it would refuse nothing.
func (d *decoder) rate(f field, dst *float64) {
	n := -1.0
	if d.percent(f, &n); n == 0 {
		why := "the breaker would open on calls that all succeeded"
		if strings.HasSuffix(f.path, ".throttle.max_rejection") {
			why = "the throttle would refuse nothing: leave throttle: out"
		}
		d.errorf(f.node(), f.path, "%s: must be more than 0%% (at 0%% %s)", key(f.path), why)
	} else if n > 0 {
		*dst = n
	}
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// size accepts a byte count: plain bytes, or a number with KiB, MiB, GiB
// (powers of 1024), KB, MB, GB (powers of 1000) or B.
func (d *decoder) size(f field, dst *int64, positive bool) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	v, good := parseSize(s)
	switch {
	case !good:
		d.errorf(f.node(), f.path, "%s: invalid size %q (write 1MiB, 512KiB, 10MB or a number of bytes)", key(f.path), s)
	case v == 0 && positive:
		d.errorf(f.node(), f.path, "%s: must be more than 0", key(f.path))
	default:
		*dst = v
	}
}

func parseSize(s string) (int64, bool) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || math.IsNaN(n) || n*float64(mult) > float64(math.MaxInt64/2) {
		return 0, false
	}
	v := n * float64(mult)
	if v != math.Trunc(v) {
		return 0, false
	}
	return int64(v), true
}

// oneOf accepts one of the values listed.
func (d *decoder) oneOf(f field, dst *string, values ...string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	if !slices.Contains(values, s) {
		msg := key(f.path) + ": " + strconv.Quote(s) + " is not one of " + strings.Join(values, ", ")
		if sg := suggest(s, values); sg != "" {
			msg += "; did you mean " + strconv.Quote(sg) + "?"
		}
		d.errorf(f.node(), f.path, "%s", msg)
		return
	}
	*dst = s
}
