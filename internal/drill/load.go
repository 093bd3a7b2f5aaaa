package drill

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// request is what the load sends, each time the same.
type request struct {
	method, url string
	header      http.Header
	body        []byte
}

// outcome is how a client request ended.
type outcome uint8

const (
	outcomeOK       outcome = iota // answered by the upstream (2xx-4xx)
	outcomeFallback                // answered by a fallback (Spillway-Fallback)
	outcomeError                   // failed: 5xx, a reason of the gateway's, or no answer
)

// result is one client request, as the drill keeps it.
type result struct {
	at      time.Duration // its start, from the drill's start
	latency time.Duration
	outcome outcome
	reason  string // for an error: Spillway-Reason, else status_5xx or transport
}

// classify turns vegeta's result into the drill's.
func classify(r *vegeta.Result, began time.Time) result {
	res := result{at: r.Timestamp.Sub(began), latency: r.Latency}
	switch {
	case r.Code == 0:
		res.outcome, res.reason = outcomeError, "transport"
	case r.Headers.Get(gateway.FallbackHeader) != "" && r.Code < 500:
		res.outcome = outcomeFallback
	case r.Headers.Get(spillwayhttp.ReasonHeader) != "":
		res.outcome, res.reason = outcomeError, r.Headers.Get(spillwayhttp.ReasonHeader)
	case r.Code >= 500:
		res.outcome, res.reason = outcomeError, "status_5xx"
	}
	return res
}

// ctxTransport gives every request of the load the drill's context, so
// that stopping the drill cancels the requests in flight at once (vegeta
// builds its requests without a context).
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// loadGrace bounds how long the drill waits, after its duration, for the
// requests still in flight before it cancels them.
const loadGrace = 10 * time.Second

// maxWorkers bounds the load's concurrent requests. Vegeta starts a worker
// whenever every worker is busy, so that the load stays open-loop while
// the system slows down; maxWorkers keeps a blackhole from opening
// unbounded connections: at most rate × the slowest answer expected.
func maxWorkers(rate float64, slowest time.Duration) uint64 {
	n := math.Ceil(rate * (slowest + time.Second).Seconds())
	return uint64(min(max(n, 64), 10000))
}

// attack sends req at rate for d (vegeta's constant pacer, open loop) and
// passes each result to record as it comes, until d passed and every
// answer came (or loadGrace after d, or ctx ended: the requests in flight
// are cancelled). It returns when the last result was recorded.
func attack(ctx context.Context, req request, rate float64, d, slowest time.Duration, record func(*vegeta.Result)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := maxWorkers(rate, slowest)
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: int(min(workers, 1000)), IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: ctxTransport{ctx: ctx, base: tr}, Timeout: slowest + loadGrace,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.MaxWorkers(workers), vegeta.MaxBody(0))
	target := vegeta.Target{Method: req.method, URL: req.url, Header: req.header, Body: req.body}
	// Vegeta paces Freq per Per: a hundredth of a request per second is
	// the finest rate.
	pacer := vegeta.ConstantPacer{Freq: max(1, int(math.Round(rate*100))), Per: 100 * time.Second}

	var stop sync.WaitGroup
	done := make(chan struct{})
	stop.Go(func() {
		grace := time.NewTimer(d + loadGrace)
		defer grace.Stop()
		select {
		case <-ctx.Done():
		case <-grace.C:
		case <-done:
			return
		}
		atk.Stop()
		cancel()
	})
	for r := range atk.Attack(vegeta.NewStaticTargeter(target), pacer, d, "drill") {
		record(r)
	}
	close(done)
	stop.Wait()
}

// methodBody returns the body a request of method carries: a small JSON
// object for the methods that have one.
func methodBody(method string) []byte {
	switch strings.ToUpper(method) {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return []byte("{}")
	}
	return nil
}
