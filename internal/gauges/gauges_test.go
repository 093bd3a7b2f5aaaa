package gauges_test

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/gauges"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/throttle"
	"github.com/spillway-dev/spillway/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// registry records what it is asked to register, and refuses the name
// "taken".
type registry struct {
	spillway.ObserverFunc
	got []string
}

func (r *registry) add(kind, name string) error {
	if name == "taken" {
		return fmt.Errorf("another %s named %q", kind, name)
	}
	r.got = append(r.got, kind+" "+name)
	return nil
}

func (r *registry) RegisterBreaker(b *breaker.Breaker) error    { return r.add("breaker", b.Name()) }
func (r *registry) RegisterBulkhead(b *bulkhead.Bulkhead) error { return r.add("bulkhead", b.Name()) }
func (r *registry) RegisterBudget(name string, _ *retry.Budget) error {
	return r.add("budget", name)
}
func (r *registry) RegisterRateLimiter(l *ratelimit.Limiter) error {
	return r.add("ratelimit", l.Name())
}
func (r *registry) RegisterThrottle(t *throttle.Throttler) error { return r.add("throttle", t.Name()) }
func (r *registry) RegisterHedge(p *hedge.Policy) error          { return r.add("hedge", p.Name()) }
func (r *registry) Register(policies ...any) error               { return gauges.Register(r, policies...) }

// RegisterWith reaches a Registrar inside nested Observers, registers each
// policy that has gauges (a retry policy's budget under its name; the
// overload policies of issue 16) and skips nil policies and those without
// gauges.
func TestRegisterWith(t *testing.T) {
	r := &registry{ObserverFunc: func(spillway.Event) {}}
	obs := spillway.Observers{spillway.ObserverFunc(func(spillway.Event) {}), spillway.Observers{nil, r}}
	err := gauges.RegisterWith(obs,
		breaker.MustNew(breaker.Config{Name: "a"}), bulkhead.MustNew(bulkhead.Config{Name: "a"}),
		retry.MustNew(retry.Config{Name: "a"}), retry.MustNew(retry.Config{Name: "b", NoBudget: true}),
		timeout.MustNew(timeout.Config{Name: "a", Duration: 1}), nil, (*breaker.Breaker)(nil),
		ratelimit.MustNew(ratelimit.Config{Name: "a", Limit: 1}), throttle.MustNew(throttle.Config{Name: "a"}),
		hedge.MustNew(hedge.Config{Name: "a"}), spillway.Hedger(nil),
		(*ratelimit.Limiter)(nil), (*throttle.Throttler)(nil), (*hedge.Policy)(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.got, ", "); got != "breaker a, bulkhead a, budget a, ratelimit a, throttle a, hedge a" {
		t.Errorf("registered %s", got)
	}
	if err := gauges.RegisterWith(nil, breaker.MustNew(breaker.Config{Name: "a"})); err != nil {
		t.Errorf("nil observer: %v", err)
	}
	err = gauges.RegisterWith(obs, breaker.MustNew(breaker.Config{Name: "taken"}), bulkhead.MustNew(bulkhead.Config{Name: "taken"}))
	if err == nil || strings.Count(err.Error(), "taken") != 2 {
		t.Errorf("conflicts: %v, want both errors joined", err)
	}
}
