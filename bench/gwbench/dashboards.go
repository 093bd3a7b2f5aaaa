package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// dashboards is the -dashboards flag: how many dashboards (and as many
// event-stream clients) the "spillway+dashboards" target carries while wrk
// measures it; 0 leaves the target out.
var dashboards int

// dashToken is the admin token of the "spillway+dashboards" gateway.
const dashToken = "gwbench-dashboards"

// dashPoll is the dashboard's POLL_MS (gateway/admin/dashboard/dashboard.js).
const dashPoll = 2 * time.Second

// dashboardsConfig is spillwayConfig with an admin token, which the
// runtime API needs for every read but GET /api/v1/status; the proxy path
// does not look at it.
var dashboardsConfig = strings.Replace(spillwayConfig, "admin:\n  listen: %s\n",
	"admin:\n  listen: %s\n  token: "+dashToken+"\n", 1)

// dashLoad holds what the simulated dashboards did during one wrk run, so
// that the report shows the load was there.
type dashLoad struct {
	polls, pollErrs, streams, streamBytes atomic.Int64
}

// attachDashboards starts n dashboards against the admin API at base (each
// polls status, upstreams and routes every dashPoll with the token, as
// dashboard.js does) and n clients following GET /api/v1/events. The
// returned function stops them all and says what they did.
func attachDashboards(ctx context.Context, base string, n int) (stop func() string) {
	ctx, cancel := context.WithCancel(ctx)
	// Each dashboard is a browser tab of its own: its own connections.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * n}}
	var load dashLoad
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { pollDashboard(ctx, client, base, &load, time.Duration(i)*dashPoll/time.Duration(n)) })
		wg.Go(func() { followEvents(ctx, client, base, &load) })
	}
	return func() string {
		cancel()
		wg.Wait()
		client.CloseIdleConnections()
		return fmt.Sprintf("  (dashboards: %d polls, %d failed; %d event streams opened, %d bytes of events)",
			load.polls.Load(), load.pollErrs.Load(), load.streams.Load(), load.streamBytes.Load())
	}
}

// pollDashboard is one dashboard's refresh loop; offset spreads the
// dashboards over the poll interval, as tabs opened at different times are.
func pollDashboard(ctx context.Context, client *http.Client, base string, load *dashLoad, offset time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	tick := time.NewTicker(dashPoll)
	defer tick.Stop()
	for {
		for _, path := range []string{"/api/v1/status", "/api/v1/upstreams", "/api/v1/routes"} {
			load.polls.Add(1)
			if _, err := dashGet(ctx, client, base+path, "", nil); err != nil && ctx.Err() == nil {
				load.pollErrs.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// followEvents reads the event stream from id 0 (the ring's past, as a
// dashboard's first connection asks) until ctx ends, reconnecting after
// dashPoll when the stream ends.
func followEvents(ctx context.Context, client *http.Client, base string, load *dashLoad) {
	for ctx.Err() == nil {
		n, err := dashGet(ctx, client, base+"/api/v1/events", "0", &load.streams)
		load.streamBytes.Add(n)
		if err != nil || ctx.Err() != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(dashPoll):
			}
		}
	}
}

// dashGet makes one GET with the token and reads the body to its end,
// counting an answered request in opened when it is not nil.
func dashGet(ctx context.Context, client *http.Client, u, lastID string, opened *atomic.Int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+dashToken)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	if opened != nil {
		opened.Add(1)
	}
	return io.Copy(io.Discard, resp.Body)
}
