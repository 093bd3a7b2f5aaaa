// Package pool holds the instances of one gateway upstream: it balances
// requests over them, checks their health actively and ejects outliers
// passively.
//
// A [Pool] is built from the upstream's instance URLs and its resolved
// configuration ([config.Health], [config.Outlier]). For every attempt the
// gateway calls [Pool.Pick], then [Instance.Begin] before sending and
// [Instance.End] when the attempt is over, saying whether it failed.
//
// # Balancing
//
// Pick chooses among the usable instances, those that are healthy (active
// checks) and not ejected (passive outlier detection):
//
//   - round_robin (the default): a shared atomic counter walks the usable
//     instances in order; with all of them usable the order is exact.
//   - least_request: the power of two random choices. Two distinct usable
//     instances are drawn at random and the one with fewer attempts in
//     flight wins (the first on a tie).
//   - random: one usable instance drawn uniformly.
//
// Pick(avoid) leaves out avoid, the instance of the previous attempt, when
// another candidate exists, so that a retry goes elsewhere; with a single
// candidate it returns that one even if it is avoid.
//
// # Panic threshold
//
// When the share of usable instances falls below Outlier.PanicThreshold, the
// health information is considered unreliable (Envoy's panic mode) and Pick
// balances over all instances, usable or not: a few overloaded survivors
// would otherwise take all of the traffic and fail too. A threshold of 0 turns
// panic mode off; then, and only then, a pool with no usable instance
// answers at once with a *spillway.Error of Reason
// [spillway.ReasonNoHealthyInstance] (Policy "pool", Name the upstream's
// name), which wraps [ErrNoHealthyInstance]. With a threshold above 0, a pool
// whose instances are all out is in panic mode and Pick always returns one.
//
// # Active health checks
//
// With Options.Health set, [Pool.Start] runs one goroutine that checks every
// instance each Health.Interval, jittered by ±10 % so that gateways started
// together do not probe in step. A round runs the checks concurrently, at most
// 8 at a time, each bounded by Health.Timeout; the next round starts one
// interval after the previous one started, or when the previous one ends if
// that is later. The default check is an HTTP GET of the instance's URL with
// Health.Path as its path: a 2xx answer passes, anything else (a redirect
// included) fails. Options.Check replaces it. Instances start healthy;
// Health.UnhealthyAfter consecutive failures make one unhealthy and
// Health.HealthyAfter consecutive passes make it healthy again. Going
// unhealthy is logged at Warn, coming back at Info (as an ejection and its
// end). [Pool.Close] stops the goroutine and waits for it.
//
// # Passive outlier ejection
//
// Outlier.ConsecutiveFailures failed attempts in a row (End(true)) eject an
// instance for Outlier.Ejection × n, n being the number of times it has been
// ejected, capped at Outlier.MaxEjection. A successful attempt resets the
// count. As in Envoy, n decays: it drops by one for every Outlier.Ejection
// the instance spends back in service, so an instance that misbehaved once
// long ago is not punished for it again. Ejections end lazily: an instance
// whose time is up is usable again the next time the pool reads the clock
// (in Pick, Status or EjectedCount); no goroutine or timer is involved.
//
// At most Outlier.MaxEjected × the number of instances (rounded down) are
// ejected at once, but at least one may always be ejected when MaxEjected is
// above 0 (Envoy's max_ejection_percent rule), so a pool of one or two
// instances can still eject a bad one; MaxEjected 0 never ejects. An instance
// that reaches the threshold while the limit is reached stays in, and its
// count starts again from zero. Failures of an instance that is already
// ejected (attempts sent in panic mode, or before the ejection) do not extend
// its ejection.
//
// # Slow start
//
// With Options.SlowStart set, an instance that comes back — its health
// checks pass again, its ejection ends, Restore brings it back, or a reload
// adds it (Inherit) — does not take its full share of the picks at once:
// its weight grows linearly from [SlowStartFloor] (10 %, so that it gets
// some traffic and is seen to work) to 1 over the window, as Envoy's
// slow_start_config with an aggression of 1. Pick applies the weight to
// whichever balancer draws: a draw that falls on a ramping instance is kept
// with probability its weight and drawn again otherwise (at most 4 draws),
// so the instance gets about its weight's share of the total weight. The
// ramp ends lazily, like an ejection: the first read past its end clears it.
// Status shows a ramping instance's Weight and RampingFor.
//
// # Concurrency
//
// A Pool and its Instances are safe for concurrent use. Begin and End are an
// atomic add (End adds a compare on failure, and takes the pool's mutex only
// when an instance reaches the failure threshold). Pick takes no lock and
// allocates nothing (but the error of a pool whose instances are all
// ejected, which carries a RetryAfter): with every instance usable and
// none ramping up it reads three atomic counters and the balancer's state;
// otherwise it scans the instances' atomic state (and reads the clock only
// while some instance is ejected or ramping up).
package pool
