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
// sheddable one.
func (d *decoder) validateShed(u *Upstream, up, name string) {
	s := u.Shed
	if s == nil || s.SheddableAt <= s.DefaultAt || d.replaced(up, ".shed.sheddable_at", ".shed.default_at") {
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
