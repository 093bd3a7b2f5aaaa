package config

import "strings"

// shedShare decodes shed.sheddable_at and shed.default_at: a share above 0
// (at 0 % every request of the class would be shed, an outage of one's own
// making); 100 % never sheds the class.
func (d *decoder) shedShare(f field, dst *float64) {
	n := -1.0
	if d.percent(f, &n); n == 0 {
		d.errorf(f.node(), f.path, "%s: must be more than 0%% (at 0%% every request of the class is refused; 100%% never sheds it)", key(f.path))
	} else if n > 0 {
		*dst = n
	}
}

// validateShed checks that the default class is not shed before the
// sheddable one, and warns when the sheddable class gets no slot of its
// own.
func (d *decoder) validateShed(u *Upstream, up, name string) {
	s := u.Shed
	if s == nil {
		return
	}
	if n := u.Bulkhead.MaxConcurrent; s.SheddableAt < 1 && s.SheddableAt*float64(n) <= 1 && !d.replaced(up, ".shed.sheddable_at", ".bulkhead.max_concurrent") {
		p, pos := d.at(up, ".shed")
		d.warnAt(pos, p, "%s.shed: sheddable_at %v%% of bulkhead.max_concurrent %d is one slot or less: a sheddable request is admitted only while nothing is in flight", name, 100*s.SheddableAt, n)
	}
	if s.SheddableAt <= s.DefaultAt || d.replaced(up, ".shed.sheddable_at", ".shed.default_at") {
		return
	}
	// At the threshold written: sheddable_at, or default_at when only it
	// was (lowered below sheddable_at's default).
	p, pos := d.at(up, ".shed.sheddable_at")
	if !strings.HasSuffix(p, ".sheddable_at") {
		p, pos = d.at(up, ".shed.default_at")
	}
	d.errAt(pos, p, "%s.shed: sheddable_at (%v%%) is above default_at (%v%%): sheddable requests would outlast default ones", name, 100*s.SheddableAt, 100*s.DefaultAt)
}
