package gateway

import (
	"net/http"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/shed"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// PriorityHeader is the request header that classes a request for load
// shedding: critical, default or sheddable (spillway.ParsePriority). A
// route's priority: says whether it is trusted and what an absent or
// unknown value means. It is forwarded as received, so that the services
// behind the gateway can shed by the same class (spillwayhttp.Priority
// reads it into a request's context).
const PriorityHeader = spillwayhttp.PriorityHeader

// requestPriority is the class of r on route rc: its header's, when the
// route trusts it and it names a class, else the route's default.
func requestPriority(r *http.Request, rc *config.Route) spillway.Priority {
	pc := rc.Priority
	if pc == nil || pc.TrustHeader {
		if v := r.Header[PriorityHeader]; len(v) > 0 {
			if p, ok := spillway.ParsePriority(v[0]); ok {
				return p
			}
		}
	}
	if pc == nil {
		return spillway.PriorityDefault
	}
	p, _ := spillway.ParsePriority(pc.Default)
	return p
}

// shedRequest refuses x's request at up when up sheds its class under the
// present pressure on up's bulkhead (nil: admitted). The refusal is
// counted and sampled by up's metrics as any bulkhead_full.
func shedRequest(x *exchange, up *upstream) error {
	if up.shed == nil {
		return nil
	}
	// x, not x.ctx: the rejection event carries the exchange, whose span
	// records it.
	return up.shed.Admit(x, requestPriority(x.in, x.route.cfg))
}

// newShedder returns u's load shedder, reading up's bulkhead; nil when u
// sheds nothing.
func newShedder(u *config.Upstream, up *upstream) (*shed.Shedder, error) {
	sc, ok := u.ShedConfig(up.bulkhead)
	if !ok {
		return nil, nil
	}
	sc.Observer = up.metrics
	return shed.New(sc)
}

// applyShed changes the shedder's thresholds in place (its counts kept),
// or makes one or drops it when shed: appears or goes.
func applyShed(old, next *upstream, p *plan) error {
	d := diffKeys("shed", old.cfg.Shed, next.cfg.Shed)
	if d == "" {
		return nil
	}
	s := next.cfg.Shed
	if old.shed == nil || s == nil {
		sh, err := newShedder(&next.cfg, next)
		if err != nil {
			return err
		}
		next.shed = sh
		p.applied(Change{Upstream: next.name, Part: "shed", Detail: d})
		return nil
	}
	sh := old.shed
	if _, err := shed.New(shed.Config{Limiter: next.bulkhead, SheddableBelow: s.SheddableAt, DefaultBelow: s.DefaultAt}); err != nil {
		return err
	}
	p.commit(func() { _ = sh.SetThresholds(s.SheddableAt, s.DefaultAt) }) // checked above
	p.applied(Change{Upstream: next.name, Part: "shed", Detail: d + "; its counts kept"})
	return nil
}
