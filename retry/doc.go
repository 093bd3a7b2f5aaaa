// Package retry re-runs failed calls with backoff and jitter, only when that
// is safe, and never into a retry storm.
//
// A [Policy] decides after each failed attempt whether to retry and how long
// to wait; it implements [spillway.Retrier], so a spillway.Pipeline runs it
// between the total timeout and the guards, and [Policy.Run] and [Do] run
// calls with it on their own. A [Budget] bounds the retries of every policy
// that shares it by the traffic that earns them.
//
// # Model
//
// MaxAttempts counts every attempt, the first included. After the n-th
// failed attempt the policy waits a delay from one of three schemes:
//
//	Exponential  d = min(Max, Initial × Multiplier^(n-1)), then jitter
//	Constant     d = Initial, then jitter
//	Decorrelated d = min(Max, rand(Initial, 3 × previous delay))
//
// and spreads d with FullJitter (rand[0, d)), EqualJitter (d/2 +
// rand[0, d/2)) or NoJitter. A delay hint carried by the error (a server's
// Retry-After, see spillway.WithRetryAfter) raises the delay to the hint,
// still capped at Max. An attempt whose delay would end at or after the
// context's deadline, or MaxElapsed after the execution began, is not
// started: the policy stops at once instead of sleeping uselessly.
//
// # Defaults
//
// Config{} is 3 attempts, exponential backoff from 100ms doubling up to 5s,
// full jitter, no MaxElapsed (the context's deadline is the only time limit),
// every error retryable that passes the safe defaults, and a retry budget of
// the policy's own (Policy.Config().Budget; share one Budget between the
// policies of one downstream). BudgetConfig{} allows retries up to 20% of
// the requests of the last 10s, plus 10 retries a second, in 10 buckets.
//
// The budget is on by default because a Policy is usually shared by
// concurrent callers, where retries without a budget multiply the load on a
// failing downstream, and a policy cannot tell that use from one caller's.
// A single caller that calls sequentially (a worker draining a queue) cannot
// make a retry storm — it sends one request at a time, and a refused retry
// only brings its next request sooner — so it sets Config.NoBudget, or its
// budget drops work: a worker whose writes fail 30 % of the time loses about
// a tenth of them to budget_exhausted under the defaults.
//
// # Safe defaults
//
// Whatever Config.Retryable says, a policy never retries: when its context
// is done (the caller's cancellation or deadline, or a total timeout); a
// rejection (spillway.IsRejection: breaker_open, bulkhead_full,
// budget_exhausted, throttled, no_healthy_instance); an error marked with
// spillway.Permanent; a *spillway.PanicError; a context.Canceled from any
// context. An attempt timeout (deadline_exceeded while the context is alive)
// is retried.
//
// # Errors
//
// A non-retryable error is returned as it is. When the attempts run out, or
// the deadline or MaxElapsed leaves no time for another attempt, the error
// is a *spillway.Error with Policy "retry", Err [ErrExhausted], Cause the last
// attempt's error and Code its reason (spillway.ReasonOf still says
// upstream_error or deadline_exceeded). When the budget refuses a retry, it
// is a *spillway.Error with Policy "budget", Code budget_exhausted, Cause the
// last error and Err a [*BudgetError] (errors.Is [ErrBudgetExhausted])
// whose message says what the budget allowed and how to size it:
//
//	spillway: budget "writes": retry budget exhausted: 399 retries in the last 10s, all that 20% of 1499 requests plus 10/s allow (raise BudgetConfig.Ratio or MinPerSecond; a caller that calls sequentially needs no budget: Config.NoBudget): write: connection reset
//
// errors.Is and errors.As reach both the sentinel and the last error.
//
// # Runtime changes
//
// A Policy is immutable. [Policy.With] returns a new one with the settings
// its function sets and every other one kept, the budget (and its counts)
// included; [New] of a partial Config, by contrast, resets every field it
// leaves out and starts a new budget. A [Budget] has no runtime change: a
// new BudgetConfig means a new Budget, whose counts start from zero.
//
// # Concurrency
//
// A Policy is immutable and safe for concurrent use; each execution keeps
// its state in a spillway.RetryState value. An execution whose first attempt
// succeeds takes no lock, reads no clock (unless MaxElapsed is set) and
// allocates nothing. The backoff is a timer (spillway.Sleep), never a
// goroutine. A Budget is lock-free except when its window rolls over a
// bucket; see [Budget] for its bounded inaccuracy. Neither starts a
// goroutine. Observers are called synchronously, outside any lock.
package retry
