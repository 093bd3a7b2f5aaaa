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

// Hedge makes a hedged call: fn(ctx, 0) is the primary attempt, run on the
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
// A call whose primary answers before the delay starts no goroutine: the
// delay is a runtime timer (time.AfterFunc) stopped when the primary
// returns, and the primary runs under a cancellable context. A hedge that
// panics hands its panic to the caller's goroutine, which re-raises it after
// cancelling the other attempts (it is re-raised on the hedge's goroutine
// when the call has already returned); a hedge that calls runtime.Goexit
// counts as failed.
func Hedge[R any](ctx context.Context, h Hedger, fn func(ctx context.Context, k int) (R, error), discard func(R)) (r R, hedges int, err error) {
	d, ok := h.HedgeDelay(1)
	start := h.Begin()
	if !ok {
		// No hedge (none allowed, or no delay learned yet): the call still
		// teaches the policy its latency.
		if r, err = fn(ctx, 0); err == nil {
			h.Record(ctx, start, 0)
		}
		return r, 0, err
	}
	pctx, cancel := context.WithCancelCause(ctx)
	rc := &race[R]{h: h, fn: fn, discard: discard, parent: ctx, primary: cancel}
	rc.timer = time.AfterFunc(d, rc.fire)
	finished := false
	defer func() {
		if !finished {
			// The primary panicked or called runtime.Goexit: the hedges
			// are cancelled and their results discarded; the panic goes on.
			rc.abandon()
		}
	}()
	r, err = fn(pctx, 0)
	finished = true
	if rc.timer.Stop() {
		// No hedge was sent, nor will be.
		cancel(nil)
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

// race is one hedged call once its delay may have fired. Its fields are
// guarded by mu, but for those set before the timer starts.
type race[R any] struct {
	h       Hedger
	fn      func(context.Context, int) (R, error)
	discard func(R)
	parent  context.Context
	primary context.CancelCauseFunc
	timer   *time.Timer

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
func (rc *race[R]) fire() {
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
func (rc *race[R]) run(ctx context.Context, cancel context.CancelCauseFunc, k int) {
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
	r, err := rc.fn(ctx, k)
	returned = true
	rc.deliver(k, r, err)
}

// deliver takes hedge k's outcome: the first success wins, anything else is
// discarded.
func (rc *race[R]) deliver(k int, r R, err error) {
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
func (rc *race[R]) panic(v any) bool {
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
func (rc *race[R]) wake() {
	if !rc.woken {
		rc.woken = true
		close(rc.done)
	}
}

// cancelExcept cancels every attempt but attempt k (0: the primary), and
// the next hedge's timer. Called with mu held.
func (rc *race[R]) cancelExcept(k int) {
	if k != 0 {
		rc.primary(ErrHedgeLost)
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
func (rc *race[R]) settle(r R, err error) (_ R, hedges, winner int, _ error) {
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
	rc.primary(nil)
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
func (rc *race[R]) abandon() {
	rc.timer.Stop()
	rc.mu.Lock()
	rc.decided = true
	rc.cancelExcept(-1)
	won, result := rc.won, rc.result
	rc.mu.Unlock()
	if won {
		rc.drop(result)
	}
}

func (rc *race[R]) drop(r R) {
	if rc.discard != nil {
		rc.discard(r)
	}
}
