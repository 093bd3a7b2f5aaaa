package drill

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

// recorder keeps every client request of the drill.
type recorder struct {
	mu      sync.Mutex
	results []result
}

func (r *recorder) add(res result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
}

// since returns the requests started at or after from, for the progress
// line.
func (r *recorder) since(from time.Duration) (n, available int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.results) - 1; i >= 0 && r.results[i].at >= from; i-- {
		n++
		if r.results[i].outcome != outcomeError {
			available++
		}
	}
	return n, available
}

// snapshot returns the requests sorted by their start.
func (r *recorder) snapshot() []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.results)
	slices.SortStableFunc(out, func(a, b result) int { return int(a.at - b.at) })
	return out
}

// stateAt is a breaker state seen by the watcher at an offset.
type stateAt struct {
	at    time.Duration
	state string
}

// watcher polls the admin API's status for the upstream's breaker state
// (and the queues' backlog): the breaker's transitions with the poll's
// resolution.
type watcher struct {
	t        *target
	upstream string
	route    string // its queue, for an async route
	began    time.Time

	mu       sync.Mutex
	states   []stateAt // each breaker state seen, at its first sighting
	backlogs []backlogAt
}

// backlogAt is the route's queue backlog seen at an offset.
type backlogAt struct {
	at      time.Duration
	pending int
}

// watchEvery is the status poll's interval: the resolution of
// time_to_open and of the breaker's state in the series.
const watchEvery = 50 * time.Millisecond

func (w *watcher) run(ctx context.Context) {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *watcher) poll(ctx context.Context) {
	var st gateway.Status
	if err := w.t.getJSON(ctx, "/api/v1/status", &st); err != nil {
		return // the next poll tries again; a gap only blurs the series
	}
	at := time.Since(w.began)
	w.mu.Lock()
	defer w.mu.Unlock()
	if u, ok := st.Upstreams[w.upstream]; ok {
		if n := len(w.states); n == 0 || w.states[n-1].state != u.Breaker.State {
			w.states = append(w.states, stateAt{at: at, state: u.Breaker.State})
		}
	}
	if q, ok := st.Queues[w.route]; ok {
		w.backlogs = append(w.backlogs, backlogAt{at: at, pending: q.Pending})
	}
}

// stateAt returns the breaker's state last seen at or before at ("" when
// none was seen yet).
func (w *watcher) stateAt(at time.Duration) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := ""
	for _, st := range w.states {
		if st.at > at {
			break
		}
		s = st.state
	}
	return s
}

// firstAfter returns the first offset at or after from at which the
// breaker was seen in state, -1 when never.
func (w *watcher) firstAfter(from time.Duration, state string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, st := range w.states {
		if st.state != state {
			continue
		}
		if st.at >= from {
			return st.at
		}
		// In state since before from, still in it at from.
		if i+1 == len(w.states) || w.states[i+1].at > from {
			return from
		}
	}
	return -1
}

// opened returns when the breaker opened during [from, to), -1 when it
// did not.
func (w *watcher) opened(from, to time.Duration) time.Duration {
	at := w.firstAfter(from, "open")
	if at < 0 || at >= to {
		return -1
	}
	return at
}

// attemptsTotal reads spillway_upstream_attempts_total of upstream from
// the admin /metrics, summed over its results.
func (t *target) attemptsTotal(ctx context.Context, upstream string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &http.ProtocolError{ErrorString: "/metrics: " + resp.Status}
	}
	return sumCounter(bufio.NewScanner(resp.Body), "spillway_upstream_attempts_total", `upstream="`+upstream+`"`)
}

// sumCounter sums the samples of the metric name whose labels hold label
// in Prometheus text.
func sumCounter(sc *bufio.Scanner, name, label string) (float64, error) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 || !strings.Contains(line[:end], label) {
			continue
		}
		fields := strings.Fields(line[end+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, sc.Err()
}

// backlog returns the route's pending jobs last seen at or before at, and
// the most seen until then.
func (w *watcher) backlog(at time.Duration) (last, most int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.backlogs {
		if b.at > at {
			break
		}
		last, most = b.pending, max(most, b.pending)
	}
	return last, most
}
