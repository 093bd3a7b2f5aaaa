package spillway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrHedgeLost is the cause (context.Cause) of the context of an attempt of
// a hedged call that another attempt's answer made useless: it lost the
// race. Its context's Err is context.Canceled.
var ErrHedgeLost = errors.New("spillway: another attempt of the hedged call answered first")

// HedgeCaller returns the context to give Engine.Attempt as its caller for
// an attempt of a hedged call that runs under attempt (the context Hedge
// gave it) on behalf of caller: it has ended when caller has, or when the
// attempt lost its race (ErrHedgeLost). So the guards release a loser cut
// short marked CallerDone, which breakers do not count — losing a race says
// nothing about the downstream — while a failure of its own (a total
// timeout included) counts as it would without hedging.
func HedgeCaller(caller, attempt context.Context) context.Context {
	return hedgeCaller{Context: caller, attempt: attempt}
}

type hedgeCaller struct {
	context.Context
	attempt context.Context
}

func (c hedgeCaller) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if c.attempt.Err() != nil && context.Cause(c.attempt) == ErrHedgeLost {
		return context.Canceled
	}
	return nil
}

// Hedger is the contract between a hedged call (Hedge: a Pipeline's
// attempts, spillwayhttp, the gateway) and a hedging policy; hedge.Policy
// implements it. It decides when and whether to send a hedge and learns
// from the calls' latencies; Hedge does the racing.
type Hedger interface {
	// HedgeDelay returns how long after the previous attempt started (the
	// primary's start for k = 1) hedge k is sent, and false when the call
	// may send no hedge k (past the policy's Max, or no delay known yet).
	HedgeDelay(k int) (d time.Duration, ok bool)
	// TryHedge reports whether hedge k may be sent now (a retry budget
	// allows it) and, when it may, counts and reports it (EventHedge).
	TryHedge(ctx context.Context, k int) bool
	// Begin is called once per call, hedged or not, before its primary
	// attempt; it returns the clock reading Record is given back.
	Begin() int64
	// Record is called once per call that succeeded, hedged or not: start
	// is Begin's reading, winner the attempt that answered (0 the primary,
	// k hedge k).
	Record(ctx context.Context, start int64, winner int)
}

// HedgeFunc is an attempt of a hedged call: fn(ctx, k) makes attempt k (0
// the primary, k hedge k), fn(ctx) when the attempt need not know which it
// is. Hedge takes either as it is, so that hedge.Do passes its caller's
// function without an adapter closure allocated per call.
type HedgeFunc[R any] interface {
	func(ctx context.Context, k int) (R, error) | func(ctx context.Context) (R, error)
}

// Hedge makes a hedged call (fn(ctx, k), or fn(ctx) for the one-argument
// HedgeFunc): fn(ctx, 0) is the primary attempt, run on the
// caller's goroutine; when it has not answered after h.HedgeDelay(1) and
// h.TryHedge allows it, fn(hctx, 1) is started on a goroutine of its own, and
// so on up to the policy's maximum, each after the delay since the previous
// one. fn returns its result and the attempt's failure (nil: a success).
// Hedge returns the result that stands, how many hedges were sent and its
// failure.
//
// The first success wins: the other attempts' contexts are cancelled (their
// cause ErrHedgeLost; see HedgeCaller) and
// their results, whatever they are, given to discard (when not nil) by the
// goroutine that produced them — a response body is closed there. The
// caller's goroutine returns once the primary's fn has returned (it must
// heed its context's cancellation) and either an attempt has succeeded or
// every attempt sent has failed; the hedges still running then are cancelled
// and finish on their own goroutines.
//
// Every attempt's context, the winner's included, is cancelled by the time
// Hedge returns: a result that needs its context afterwards (an HTTP
// response whose body is read later) must be read inside fn, or run under a
// context of its own that only the race's cancellation (ErrHedgeLost)
// reaches, as spillwayhttp does.
//
// When every attempt fails, the primary's result and failure are returned
// (the hedges' are discarded): the retry policy around a hedged attempt
// judges the first attempt's failure, as it would without hedging. Once the
// primary has failed no further hedge is sent; the hedges in flight may
// still win.
//
// A call whose primary answers before the delay starts no goroutine and
// allocates one object, its race: the delay is a runtime timer reused from
// call to call, and the primary's context becomes a cancellable
// context.WithCancelCause of ctx only when its Done channel is asked for (an
// attempt that only reads Err, or not even that, costs nothing more). A
// hedge that panics hands its panic to the caller's goroutine, which
// re-raises it after cancelling the other attempts (it is re-raised on the
// hedge's goroutine when the call has already returned); a hedge that calls
// runtime.Goexit counts as failed.
func Hedge[R any, F HedgeFunc[R]](ctx context.Context, h Hedger, fn F, discard func(R)) (r R, hedges int, err error) {
	d, ok := h.HedgeDelay(1)
	start := h.Begin()
	if !ok {
		// No hedge (none allowed, or no delay learned yet): the call still
		// teaches the policy its latency.
		if r, err = callHedge[R](fn, ctx, 0); err == nil {
			h.Record(ctx, start, 0)
		}
		return r, 0, err
	}
	rc := &race[R, F]{h: h, fn: fn, discard: discard, parent: ctx}
	rc.primary.Context = ctx
	rc.timer = startHedgeTimer(d, rc)
	finished := false
	defer func() {
		if !finished {
			// The primary panicked or called runtime.Goexit: the hedges
			// are cancelled and their results discarded; the panic goes on.
			rc.abandon()
		}
	}()
	r, err = callHedge[R](rc.fn, &rc.primary, 0)
	finished = true
	if rc.timer.stop() {
		// No hedge was sent, nor will be.
		rc.primary.cancel(false)
		if err == nil {
			h.Record(ctx, start, 0)
		}
		return r, 0, err
	}
	r, hedges, winner, err := rc.settle(r, err)
	if err == nil {
		h.Record(ctx, start, winner)
	}
	return r, hedges, err
}

// callHedge makes attempt k with fn.
func callHedge[R any, F HedgeFunc[R]](fn F, ctx context.Context, k int) (R, error) {
	switch f := any(fn).(type) {
	case func(context.Context, int) (R, error):
		return f(ctx, k)
	default:
		return any(fn).(func(context.Context) (R, error))(ctx)
	}
}

// race is one hedged call once its delay may have fired. Its fields are
// guarded by mu, but for those set before the timer starts and primary,
// which guards itself. It is the primary's context (primary, an interior
// pointer), so it is made per call: an attempt may keep its context after
// the call, which must then read as cancelled.
type race[R any, F HedgeFunc[R]] struct {
	h       Hedger
	fn      F
	discard func(R)
	parent  context.Context
	primary primaryContext
	timer   *hedgeTimer

	mu sync.Mutex
	// hedges holds the cancel functions of the hedges sent, hedge k's at
	// index k-1.
	hedges []context.CancelCauseFunc
	// next is the timer of the next hedge, once one is due.
	next *time.Timer
	// decided is set once the call's result is taken (or the call is
	// abandoned): no hedge is sent after it, and whatever arrives after it
	// is discarded.
	decided       bool
	primaryFailed bool
	inFlight      int
	won           bool
	winner        int
	result        R
	panicked      bool
	panicValue    any
	// done is closed (once: woken) when a caller waiting for its hedges may
	// settle: one won, one panicked, or the last one failed.
	done  chan struct{}
	woken bool
}

// fire runs on the timer's goroutine when the delay elapsed: it sends the
// next hedge, if the race and the policy allow, and runs it there.
func (rc *race[R, F]) fire() {
	rc.mu.Lock()
	k := len(rc.hedges) + 1
	stop := rc.decided || rc.primaryFailed || rc.won || rc.panicked
	rc.mu.Unlock()
	// TryHedge reports to the observer, so it is not called under mu; a
	// primary that answers in between leaves a hedge counted but not sent.
	if stop || !rc.h.TryHedge(rc.parent, k) {
		return
	}
	rc.mu.Lock()
	if rc.decided || rc.primaryFailed || rc.won || rc.panicked {
		rc.mu.Unlock()
		return
	}
	hctx, cancel := context.WithCancelCause(rc.parent)
	rc.hedges = append(rc.hedges, cancel)
	rc.inFlight++
	if rc.done == nil {
		rc.done = make(chan struct{})
	}
	if d, ok := rc.h.HedgeDelay(k + 1); ok {
		rc.next = time.AfterFunc(d, rc.fire)
	}
	rc.mu.Unlock()
	rc.run(hctx, cancel, k)
}

// run makes hedge k on the calling goroutine and hands its outcome to the race.
func (rc *race[R, F]) run(ctx context.Context, cancel context.CancelCauseFunc, k int) {
	defer cancel(nil)
	returned := false
	defer func() {
		if returned {
			return
		}
		if v := recover(); v != nil {
			if !rc.panic(v) {
				panic(v)
			}
			return
		}
		// runtime.Goexit: the hedge failed, and this goroutine ends.
		var zero R
		rc.deliver(k, zero, &PanicError{})
	}()
	r, err := callHedge[R](rc.fn, ctx, k)
	returned = true
	rc.deliver(k, r, err)
}

// deliver takes hedge k's outcome: the first success wins, anything else is
// discarded.
func (rc *race[R, F]) deliver(k int, r R, err error) {
	rc.mu.Lock()
	rc.inFlight--
	if err != nil || rc.decided || rc.won || rc.panicked {
		if rc.primaryFailed && rc.inFlight == 0 {
			rc.wake()
		}
		rc.mu.Unlock()
		rc.drop(r)
		return
	}
	rc.won, rc.winner, rc.result = true, k, r
	rc.cancelExcept(k)
	rc.wake()
	rc.mu.Unlock()
}

// panic hands a hedge's panic value to the caller, and reports false when
// the call has already returned (nobody can take it).
func (rc *race[R, F]) panic(v any) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.inFlight--
	if rc.decided {
		return false
	}
	if !rc.panicked {
		rc.panicked, rc.panicValue = true, v
	}
	rc.cancelExcept(-1)
	rc.wake()
	return true
}

// wake lets a waiting caller settle. Called with mu held.
func (rc *race[R, F]) wake() {
	if !rc.woken {
		rc.woken = true
		close(rc.done)
	}
}

// cancelExcept cancels every attempt but attempt k (0: the primary), and
// the next hedge's timer. Called with mu held.
func (rc *race[R, F]) cancelExcept(k int) {
	if k != 0 {
		rc.primary.cancel(true)
	}
	for i, c := range rc.hedges {
		if i+1 != k {
			c(ErrHedgeLost)
		}
	}
	if rc.next != nil {
		rc.next.Stop()
	}
}

// settle decides the call once its primary returned (r, err) after the
// delay fired, waiting for the hedges in flight when the primary failed.
func (rc *race[R, F]) settle(r R, err error) (_ R, hedges, winner int, _ error) {
	rc.mu.Lock()
	if err != nil && !rc.won && !rc.panicked {
		rc.primaryFailed = true
		if rc.next != nil {
			rc.next.Stop()
		}
		if rc.inFlight > 0 {
			rc.mu.Unlock()
			<-rc.done
			rc.mu.Lock()
		}
	}
	rc.decided = true
	won, winner, result := rc.won, rc.winner, rc.result
	if !won {
		// The primary's result stands (a success, or every attempt failed):
		// the hedges still running lose.
		rc.cancelExcept(0)
	}
	rc.primary.cancel(false)
	panicked, pv, hedges := rc.panicked, rc.panicValue, len(rc.hedges)
	rc.mu.Unlock()
	if panicked {
		rc.drop(r)
		if won {
			rc.drop(result)
		}
		panic(pv)
	}
	if !won {
		return r, hedges, 0, err
	}
	rc.drop(r)
	return result, hedges, winner, nil
}

// abandon ends a call whose primary panicked or called runtime.Goexit: no
// hedge is sent, the ones in flight are cancelled and discard what they
// return, and a winner's result is discarded.
func (rc *race[R, F]) abandon() {
	rc.timer.stop()
	rc.mu.Lock()
	rc.decided = true
	rc.cancelExcept(-1)
	won, result := rc.won, rc.result
	rc.mu.Unlock()
	if won {
		rc.drop(result)
	}
}

func (rc *race[R, F]) drop(r R) {
	if rc.discard != nil {
		rc.discard(r)
	}
}

// hedgeTimer is the runtime timer of a race's first delay. A timer stopped
// before it fired goes back to hedgeTimers for the next call, so that an
// unhedged call allocates none; one that fired is left to the collector,
// since its callback may still be running. The timers of the calls made
// in a testing/synctest bubble belong to the bubble (its fake clock; the
// runtime aborts a program that stops one from outside): they are made
// afresh and never pooled.
type hedgeTimer struct {
	t *time.Timer
	// race is the race the timer fires for: written before the timer is
	// (re)started, read by its callback (the runtime orders the two).
	race    interface{ fire() }
	bubbled bool
}

var hedgeTimers sync.Pool

// startHedgeTimer calls rc.fire after d, on a goroutine of its own.
func startHedgeTimer(d time.Duration, rc interface{ fire() }) *hedgeTimer {
	bubbled := inSynctestBubble()
	var ht *hedgeTimer
	if !bubbled {
		ht, _ = hedgeTimers.Get().(*hedgeTimer)
	}
	if ht == nil {
		ht = &hedgeTimer{race: rc, bubbled: bubbled}
		ht.t = time.AfterFunc(d, ht.fire)
		return ht
	}
	ht.race = rc
	ht.t.Reset(d)
	return ht
}

// inSynctestBubble reports whether the calling goroutine runs in a
// testing/synctest bubble, where time.Now carries no monotonic clock
// reading (Round(0) strips one; TestPooledTimersStayOutOfBubbles keeps
// this honest across Go releases).
func inSynctestBubble() bool {
	now := time.Now()
	return now == now.Round(0)
}

func (ht *hedgeTimer) fire() { ht.race.fire() }

// stop stops the timer and reports whether it had not fired; then its
// callback will not run, and the timer is reused.
func (ht *hedgeTimer) stop() bool {
	if !ht.t.Stop() {
		return false
	}
	if !ht.bubbled {
		ht.race = nil
		hedgeTimers.Put(ht)
	}
	return true
}

// primaryContext is the context of a race's primary attempt: its parent's
// until the race cancels it. Most primaries answer before the delay and
// many never ask for a Done channel (an attempt that reads Err only), so
// the cancellable context.WithCancelCause of the parent is made only when
// Done is called; a context derived from this one calls it, and then
// attaches to that one as to any cancelCtx (no goroutine watches it).
// Cancelled before that, it answers as a context cancelled with the same
// cause does (Err, Done, context.Cause), or as its parent when that had
// ended first.
type primaryContext struct {
	context.Context // the parent
	mu              sync.Mutex
	// inner is the cancellable context made by Done, nil before.
	inner       context.Context
	cancelInner context.CancelCauseFunc
	// ended is what the context answers as once cancelled without inner:
	// canceledContext, lostContext, or the parent when it had ended first.
	ended context.Context
}

// canceledContext and lostContext are contexts cancelled with the causes a
// race cancels its primary with: none (context.Canceled) and ErrHedgeLost.
var canceledContext, lostContext = cancelledWith(nil), cancelledWith(ErrHedgeLost)

func cancelledWith(cause error) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return ctx
}

func (c *primaryContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		if c.ended != nil {
			return c.ended.Done()
		}
		c.inner, c.cancelInner = context.WithCancelCause(c.Context)
	}
	return c.inner.Done()
}

func (c *primaryContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.inner != nil:
		return c.inner.Err()
	case c.ended != nil:
		return c.ended.Err()
	}
	// Read under mu, so that cancel sees the parent's end if Err did.
	return c.Context.Err()
}

func (c *primaryContext) Value(key any) any {
	c.mu.Lock()
	inner, ended := c.inner, c.ended
	c.mu.Unlock()
	if inner != nil {
		return inner.Value(key)
	}
	if ended != nil && ended != c.Context {
		// ended derives from Background: it has a value only for the key
		// context.Cause asks a cancelCtx for, and answers it with itself.
		if v := ended.Value(key); v != nil {
			return v
		}
	}
	return c.Context.Value(key)
}

// cancel cancels the context, its cause ErrHedgeLost when lost is set;
// only the first cancellation counts.
func (c *primaryContext) cancel(lost bool) {
	c.mu.Lock()
	cancelInner := c.cancelInner
	switch {
	case cancelInner != nil, c.ended != nil:
	case c.Context.Err() != nil:
		c.ended = c.Context
	case lost:
		c.ended = lostContext
	default:
		c.ended = canceledContext
	}
	c.mu.Unlock()
	if cancelInner != nil {
		// Outside mu: the contexts derived from inner are cancelled now.
		if lost {
			cancelInner(ErrHedgeLost)
		} else {
			cancelInner(nil)
		}
	}
}
