package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/internal/adminclient"
	"github.com/spillway-dev/spillway/internal/server"
)

// target is the gateway a drill drives, with the fault proxy in front of
// its upstream: public and admin are base URLs on loopback.
type target struct {
	public, admin, token string
	faults               *faultProxy
	// stop restores what the drill changed and stops what it started.
	stop func() error
}

// startLocal starts the gateway of cfg in process on 127.0.0.1:0, public
// and admin, with the upstream's instances behind the fault proxy. The
// queue of async routes, when the file uses the embedded store, lives in
// a temporary directory: a drill never writes into the gateway's data.
func startLocal(ctx context.Context, cfg *config.Config, upstream string, latency time.Duration, logOut io.Writer) (*target, error) {
	faults, proxied, err := startFaultProxy(cfg.Upstreams[upstream].Instances, latency)
	if err != nil {
		return nil, err
	}
	c := *cfg
	c.Upstreams = make(map[string]*config.Upstream, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		c.Upstreams[name] = u
	}
	u := *cfg.Upstreams[upstream]
	u.Instances = proxied
	c.Upstreams[upstream] = &u
	c.Listen, c.Admin.Listen, c.TLS = "127.0.0.1:0", "127.0.0.1:0", nil

	var cleanup []func()
	undo := func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
		faults.close()
	}
	if len(c.Queue.Servers) == 0 {
		dir, err := os.MkdirTemp("", "spillway-drill-")
		if err != nil {
			undo()
			return nil, fmt.Errorf("the queue's directory: %w", err)
		}
		cleanup = append(cleanup, func() { _ = os.RemoveAll(dir) })
		c.Queue.Dir = dir
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	q, err := server.OpenQueue(ctx, &c, logger)
	if err != nil {
		undo()
		return nil, err
	}
	if q != nil {
		cleanup = append(cleanup, func() { _ = q.Close() })
	}
	g, err := gateway.New(&c, gateway.Options{Logger: logger, Queue: q})
	if err != nil {
		undo()
		return nil, err
	}
	cleanup = append(cleanup, g.Close)
	p, err := server.Start(&c, g, admin.Options{Token: c.Admin.Token, Tokens: c.Admin.Tokens}, nil, logger)
	if err != nil {
		undo()
		return nil, err
	}
	t := &target{public: "http://" + p.Public.Addr().String(), admin: "http://" + p.Admin.Addr().String(),
		token: c.Admin.Token, faults: faults}
	if t.token == "" && len(c.Admin.Tokens) > 0 {
		t.token = c.Admin.Tokens[0].Token
	}
	t.stop = func() error {
		err := p.Stop(nil, nil)
		undo()
		return err
	}
	return t, nil
}

// attachRemote puts the fault proxy between the running gateway at
// gatewayURL (admin API at adminURL) and its upstream: it reads the
// upstream's instances from the runtime API and repoints them at the
// proxies (PATCH /api/v1/upstreams/{name} {"instances":[...]}). stop
// undoes it: when the gateway had no runtime override before the drill,
// by clearing the overrides (DELETE /api/v1/overrides: the file's
// instances are back and nothing stays pinned); otherwise, so as not to
// clear the operator's, by patching the instances back, which stays
// listed as an override.
func attachRemote(ctx context.Context, gatewayURL, adminURL, token, upstream string, latency time.Duration) (*target, error) {
	t := &target{public: strings.TrimSuffix(gatewayURL, "/"), admin: strings.TrimSuffix(adminURL, "/"), token: token}
	var view gateway.UpstreamView
	if err := t.getJSON(ctx, "/api/v1/upstreams/"+url.PathEscape(upstream), &view); err != nil {
		return nil, err
	}
	var ovs struct {
		Overrides []json.RawMessage `json:"overrides"`
	}
	if err := t.getJSON(ctx, "/api/v1/overrides", &ovs); err != nil {
		return nil, err
	}
	instances := make([]string, len(view.Instances))
	for i, in := range view.Instances {
		instances[i] = in.URL
	}
	faults, proxied, err := startFaultProxy(instances, latency)
	if err != nil {
		return nil, err
	}
	if err := t.patchInstances(ctx, upstream, proxied); err != nil {
		faults.close()
		return nil, err
	}
	t.faults = faults
	t.stop = func() error {
		// The instances go back before the proxies stop: no request of the
		// gateway's own traffic meets a closed proxy.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if len(ovs.Overrides) == 0 {
			err = t.call(ctx, http.MethodDelete, "/api/v1/overrides", nil, nil)
		} else {
			err = t.patchInstances(ctx, upstream, instances)
		}
		faults.close()
		return err
	}
	return t, nil
}

func (t *target) patchInstances(ctx context.Context, upstream string, instances []string) error {
	body, _ := json.Marshal(map[string][]string{"instances": instances})
	return t.call(ctx, http.MethodPatch, "/api/v1/upstreams/"+url.PathEscape(upstream), body, nil)
}

// adminClient talks to the admin API; its calls are small and quick.
var adminClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}

func (t *target) getJSON(ctx context.Context, path string, v any) error {
	return t.call(ctx, http.MethodGet, path, nil, v)
}

// call sends a request to the admin API with the token and decodes a 2xx
// answer's JSON into v (when not nil).
func (t *target) call(ctx context.Context, method, path string, body []byte, v any) error {
	c := adminclient.Client{URL: t.admin, Token: t.token, HTTP: adminClient}
	return c.Do(ctx, method, path, body, v)
}

// checkLoopback refuses a --gateway or --admin URL that is not plain
// http:// on a loopback address: a drill sends its load and its faults
// to loopback only.
func checkLoopback(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return badInput("%s %q: want an http:// URL on loopback, like http://127.0.0.1:8080", flag, s)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && !strings.EqualFold(host, "localhost") {
		return badInput("%s %q: a drill sends load to loopback only (127.0.0.1, ::1, localhost)", flag, s)
	}
	return nil
}
