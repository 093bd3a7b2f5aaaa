package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// faultProxy is the fault proxy between the gateway and one upstream: a
// toxiproxy proxy (the library, in process, on 127.0.0.1:0) in front of
// each of its instances, and a server that answers 503 to everything, to
// which the errors scenario switches the proxies (toxiproxy breaks
// connections and bytes, it cannot make an HTTP status).
type faultProxy struct {
	proxies []*toxiproxy.Proxy
	targets []string // each proxy's real upstream, host:port
	latency time.Duration

	errSrv  *http.Server
	errAddr string
	errDone chan struct{}

	mu     sync.Mutex
	active bool
}

// startFaultProxy starts a proxy in front of every instance (http:// URLs)
// and returns the proxies' URLs, in the same order.
func startFaultProxy(instances []string, latency time.Duration) (*faultProxy, []string, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	f := &faultProxy{latency: latency}
	urls := make([]string, len(instances))
	for i, in := range instances {
		u, err := url.Parse(in)
		if err != nil || u.Scheme != "http" {
			f.close()
			return nil, nil, badInput("instance %q: the fault proxy passes plain http:// only", in)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		p := toxiproxy.NewProxy(srv, fmt.Sprintf("drill-%d", i), "127.0.0.1:0", host)
		if err := p.Start(); err != nil {
			f.close()
			return nil, nil, fmt.Errorf("fault proxy for %s: %w", in, err)
		}
		f.proxies = append(f.proxies, p)
		f.targets = append(f.targets, host)
		urls[i] = "http://" + p.Listen + strings.TrimSuffix(u.Path, "/")
	}
	if err := f.startErrorServer(); err != nil {
		f.close()
		return nil, nil, err
	}
	return f, urls, nil
}

// startErrorServer starts the 503 server of the errors scenario.
func (f *faultProxy) startErrorServer() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("fault proxy: the error server: %w", err)
	}
	f.errAddr = ln.Addr().String()
	f.errSrv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "spillway drill: injected 503\n")
	})}
	f.errDone = make(chan struct{})
	go func() {
		defer close(f.errDone)
		_ = f.errSrv.Serve(ln)
	}()
	return nil
}

// set turns the fault k on or off on every proxy.
func (f *faultProxy) set(k faultKind, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on == f.active {
		return nil
	}
	f.active = on
	for i, p := range f.proxies {
		if err := f.setOne(p, f.targets[i], k, on); err != nil {
			return fmt.Errorf("fault proxy %s: %w", p.Listen, err)
		}
	}
	return nil
}

// toxicName names the one toxic the drill adds to a proxy.
const toxicName = "drill"

func (f *faultProxy) setOne(p *toxiproxy.Proxy, target string, k faultKind, on bool) error {
	switch k {
	case faultOutage:
		if on {
			p.Stop() // the listener closes (refused), open connections with it (reset)
			return nil
		}
		return p.Start()
	case faultErrors:
		// Update restarts the proxy on its own address with another
		// upstream, closing the connections to the old one.
		upstream := target
		if on {
			upstream = f.errAddr
		}
		return p.Update(&toxiproxy.Proxy{Listen: p.Listen, Upstream: upstream, Enabled: true})
	}
	if !on {
		return p.Toxics.RemoveToxic(context.Background(), toxicName)
	}
	spec := `{"name":"drill","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`
	if k == faultLatency {
		spec = fmt.Sprintf(`{"name":"drill","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, f.latency.Milliseconds())
	}
	_, err := p.Toxics.AddToxicJson(strings.NewReader(spec))
	return err
}

// close removes every toxic, stops the proxies (closing every connection
// they hold) and the error server.
func (f *faultProxy) close() {
	for _, p := range f.proxies {
		p.Toxics.ResetToxics(context.Background())
		p.Stop()
	}
	if f.errSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := f.errSrv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = f.errSrv.Close()
		}
		<-f.errDone
	}
}
