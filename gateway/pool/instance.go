package pool

import (
	"fmt"
	"math"
	"net/url"
	"sync/atomic"
	"time"
)

// Instance is one instance of an upstream. The gateway sends an attempt to
// URL between Begin and End.
type Instance struct {
	// URL is the instance's base URL, as configured. Do not modify it.
	URL *url.URL

	inFlight atomic.Int64
	// consecFails counts failed attempts in a row (End(true)).
	consecFails atomic.Int32
	healthy     atomic.Bool
	// ejectedUntil is the clock reading at which the current ejection ends,
	// or 0 when the instance is not ejected (or its ended ejection has been
	// cleared). It goes from 0 to a time under pool.mu and back to 0 by a
	// compare-and-swap from anywhere; pool.ejectedSet counts the non-zero ones.
	ejectedUntil atomic.Int64
	// rampFrom is the clock reading at which the instance's slow start
	// began, or notRamping (or its ended ramp has not been cleared yet). It is set by startRamp and cleared by a compare-and-swap in
	// weight; pool.ramping counts the non-zero ones.
	rampFrom atomic.Int64

	raw       string
	pool      *Pool
	index     int
	healthURL *url.URL

	// ejections (n) and lastUntil (the end of the last ejection) are guarded
	// by pool.mu.
	ejections int32
	lastUntil int64

	// passes and fails count consecutive health check results; only the
	// checker touches them, one round after the other.
	passes, fails int
}

// String returns the instance's URL as configured.
func (i *Instance) String() string { return i.raw }

// Index returns the instance's position in the pool's configuration order,
// the index of its entry in Pool.Status.
func (i *Instance) Index() int { return i.index }

// Begin records that an attempt to the instance starts; least_request
// balancing counts the attempts in flight.
func (i *Instance) Begin() { i.inFlight.Add(1) }

// End records that an attempt ended, and whether it failed: a connection
// failure, a reset, a timeout or a 5xx answer (what the gateway counts as the
// upstream's fault). Failures feed outlier ejection; a success resets their
// count.
func (i *Instance) End(failed bool) {
	i.inFlight.Add(-1)
	p := i.pool
	limit := int32(p.outlier.ConsecutiveFailures)
	if limit <= 0 {
		return
	}
	if !failed {
		// Load first: a healthy instance's successes do not write the
		// shared cache line.
		if i.consecFails.Load() != 0 {
			i.consecFails.Store(0)
		}
		return
	}
	if i.consecFails.Add(1) >= limit {
		p.eject(i)
	}
}

// usable reports whether the instance takes traffic outside panic mode:
// healthy and not ejected at now (now is read only when some instance has
// an ejection recorded, which ejectedUntil being non-zero implies).
func (i *Instance) usable(now int64) bool {
	return i.healthy.Load() && !i.ejected(now)
}

// ejected reports whether the instance is ejected at now, clearing an
// ejection whose time is up.
func (i *Instance) ejected(now int64) bool {
	u := i.ejectedUntil.Load()
	if u == 0 {
		return false
	}
	if now < u {
		return true
	}
	if i.ejectedUntil.CompareAndSwap(u, 0) {
		i.pool.ejectedSet.Add(-1)
		i.consecFails.Store(0)
		i.startRamp(u)
		i.pool.logger.Info("spillway: instance back from ejection", "upstream", i.pool.name, "instance", i.raw)
		i.pool.transition(i, "restored", 0)
	}
	return false
}

// eject ejects i if it is not ejected yet and the MaxEjected limit allows;
// either way its failure count starts again from zero.
func (p *Pool) eject(i *Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i.consecFails.Store(0)
	now := p.clock.Nanotime()
	if i.ejected(now) {
		return
	}
	ejected := 0
	for _, in := range p.instances {
		if in.ejected(now) {
			ejected++
		}
	}
	if ejected >= p.maxEjected {
		p.logger.Debug("spillway: instance not ejected: max_ejected reached", "upstream", p.name, "instance", i.raw, "ejected", ejected)
		return
	}
	n := i.ejections
	if i.lastUntil != 0 && now > i.lastUntil {
		// n decays by one per Ejection spent back in service (Envoy).
		n -= int32(min((now-i.lastUntil)/int64(p.outlier.Ejection), int64(n)))
	}
	n = min(n+1, p.maxN)
	d := min(p.outlier.Ejection*time.Duration(n), p.outlier.MaxEjection)
	until := now + int64(d)
	i.ejections, i.lastUntil = n, until
	// ejected(now) found ejectedUntil 0 or cleared it, and only eject, under
	// mu, makes it non-zero.
	i.ejectedUntil.Store(until)
	p.ejectedSet.Add(1)
	p.logger.Warn("spillway: instance ejected", "upstream", p.name, "instance", i.raw, "for", d, "ejections", n)
	p.transition(i, "ejected", d)
}

// manualEjection is the ejectedUntil of an instance ejected by hand: a
// time never reached, so that neither its end nor the outlier logic (which
// leaves an ejected instance alone) brings it back; only Restore does.
const manualEjection = math.MaxInt64

// Eject takes the instance configured as url out of the balancing until
// Restore, whatever the outlier logic finds and beyond max_ejected (an
// operator's decision); panic mode may still send it traffic. It fails
// when the pool has no such instance.
func (p *Pool) Eject(url string) error {
	return p.setManual(url, func(i *Instance) {
		if i.ejectedUntil.Swap(manualEjection) == 0 {
			p.ejectedSet.Add(1)
		}
		p.logger.Warn("spillway: instance ejected by hand", "upstream", p.name, "instance", i.raw)
	})
}

// Restore brings the instance configured as url back into the balancing:
// the end of a manual ejection, or of the outlier logic's. It fails when
// the pool has no such instance.
func (p *Pool) Restore(url string) error {
	return p.setManual(url, func(i *Instance) {
		if i.ejectedUntil.Swap(0) != 0 {
			p.ejectedSet.Add(-1)
			i.startRamp(p.clock.Nanotime())
		}
		i.consecFails.Store(0)
		p.logger.Info("spillway: instance restored by hand", "upstream", p.name, "instance", i.raw)
	})
}

// setManual runs set on the instance configured as url under p.mu, which
// orders it with eject.
func (p *Pool) setManual(url string, set func(*Instance)) error {
	for _, in := range p.instances {
		if in.raw == url {
			p.mu.Lock()
			defer p.mu.Unlock()
			set(in)
			return nil
		}
	}
	return fmt.Errorf("pool %q: no instance %q", p.name, url)
}

// notRamping is the rampFrom of an instance that is not ramping: a clock
// reading never seen (a clock may read 0, or less under testing/synctest).
const notRamping = math.MinInt64

// startRamp begins the instance's slow start at from (a clock reading), if
// the pool has one; a ramp already running starts again from there.
func (i *Instance) startRamp(from int64) {
	if i.pool.slowStart == 0 {
		return
	}
	if i.rampFrom.Swap(from) == notRamping {
		i.pool.ramping.Add(1)
	}
}

// weight is the instance's weight at now: 1, or while it ramps up,
// SlowStartFloor growing linearly to 1 over the pool's SlowStart.
func (i *Instance) weight(now int64) float64 {
	w, _ := i.ramp(now)
	return w
}

// ramp returns the instance's weight at now and the time left of its
// ramp (0 when it is not ramping). The first read past the ramp's end
// clears it.
func (i *Instance) ramp(now int64) (weight float64, left time.Duration) {
	from := i.rampFrom.Load()
	if from == notRamping {
		return 1, 0
	}
	elapsed := now - from
	if elapsed < i.pool.slowStart {
		return SlowStartFloor + (1-SlowStartFloor)*float64(max(elapsed, 0))/float64(i.pool.slowStart), time.Duration(i.pool.slowStart - elapsed)
	}
	if i.rampFrom.CompareAndSwap(from, notRamping) {
		i.pool.ramping.Add(-1)
	}
	return 1, 0
}
