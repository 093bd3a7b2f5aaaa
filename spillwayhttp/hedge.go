package spillwayhttp

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/spillway-dev/spillway"
)

// Hedgeable reports whether a request may be hedged (Downstream.Hedge): a
// GET, HEAD or OPTIONS request. Other idempotent requests are not: two
// copies of a PUT, a DELETE or a request with an Idempotency-Key in flight
// at once may race each other at the server, which sequential retries never
// do (many servers answer 409 to the second copy of a key still in
// progress).
func Hedgeable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// hedgeKey is the context key of HedgeOf.
type hedgeKey struct{}

// HedgeOf returns which hedge the request of an attempt is (Config.Base
// reads it from the request's context): 0 for an attempt that is not a
// hedge, k for hedge k of its attempt. A hedge runs on a goroutine of its own
// while the attempt it hedges is in flight: a Base that keeps state per
// request (the gateway's instance picker) must not share it with the hedge.
func HedgeOf(ctx context.Context) int {
	k, _ := ctx.Value(hedgeKey{}).(int)
	return k
}

// tried is one attempt of a hedged race.
type tried struct {
	resp        *http.Response
	failed, err error
}

// hedgeCall is one hedged attempt: what its attempts share. It is a value
// of its own, not the exchange, which would otherwise escape to the heap
// on every request, hedged or not; the replay is a copy, read only by the
// hedges (the primary's body was taken before).
type hedgeCall struct {
	t           *Transport
	ds          *downstream
	req         *http.Request
	rep         replay
	n           int
	body        io.ReadCloser
	lim, budget time.Duration
	cause       *spillway.Error
}

// hedged makes attempt n as a hedged race: the primary with body, each hedge
// with a body of its own from the replay. Each attempt's context derives
// from the request's, not from the race's, so that the winner's response
// body outlives the race; the race's cancellation reaches an attempt while
// it waits for its response head. It returns the attempt that stands.
func (x *exchange) hedged(n int, body io.ReadCloser, lim, budget time.Duration, cause *spillway.Error) (resp *http.Response, failed, err error) {
	c := &hedgeCall{t: x.t, ds: x.ds, req: x.req, rep: x.rep, n: n, body: body, lim: lim, budget: budget, cause: cause}
	o, _, _ := spillway.Hedge(x.req.Context(), x.ds.pub.Hedge, c.attempt, closeLoser)
	return o.resp, o.failed, o.err
}

// attempt makes attempt k of the race (0: the primary) under rctx, the
// context the race cancels it by.
func (c *hedgeCall) attempt(rctx context.Context, k int) (tried, error) {
	ctx := c.req.Context()
	actx, b := ctx, c.body
	if k > 0 {
		actx = context.WithValue(ctx, hedgeKey{}, k)
		var err error
		if b, err = c.rep.body(c.req, 2); err != nil {
			return tried{err: err}, err
		}
	}
	var a *attempt
	var kept spillway.Permits
	var o tried
	var started bool
	o.resp, started, o.failed, o.err = c.ds.eng.Attempt(spillway.HedgeCaller(ctx, rctx), rctx, c.n, func(context.Context) (*http.Response, error) {
		a = c.t.newAttempt(actx, c.ds, c.lim, c.cause)
		stop := context.AfterFunc(rctx, func() {
			if context.Cause(rctx) == spillway.ErrHedgeLost {
				a.cancel(spillway.ErrHedgeLost)
			}
		})
		defer stop()
		return c.t.send(c.req, a, b, false, c.lim, c.budget)
	}, &kept)
	c.t.sent(c.ds, a, b, started, o.resp, o.err, &kept)
	if o.failed != nil {
		return o, o.failed
	}
	return o, o.err
}

// closeLoser closes the response of an attempt that lost its race.
func closeLoser(o tried) {
	if o.resp != nil {
		o.resp.Body.Close()
	}
}
