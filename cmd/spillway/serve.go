package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/queue"
)

func newServeCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Run the gateway: a resilience reverse proxy configured in YAML",
		Long: `serve runs the gateway described by FILE: the public listener proxies the
routes to their upstreams through the policies, the admin listener answers
/healthz, /readyz, /metrics and /api/v1/. The access log (JSON, one line per
request) goes to stdout; the start lines and the operational log to stderr.

With an async route, the durable queue opens first: the embedded NATS
JetStream store in queue.dir, or the cluster of queue.servers.

Signals: SIGTERM or SIGINT stops accepting connections and drains the requests
in flight for up to server.shutdown_grace (a second one closes at once), then
stops the queue workers (5 s for their deliveries in flight) and closes the
queue (the embedded store is flushed);
SIGHUP re-reads FILE and applies it, or refuses it and keeps the running
configuration when it is invalid.

Unless GOGC is set in the environment, the Go collector runs at GOGC=400.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signals := make(chan os.Signal, 1)
			signal.Notify(signals, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
			defer signal.Stop(signals)
			// The signals channel is how serve stops: main's context is
			// cancelled by the same SIGTERM, which would otherwise be read
			// twice and turn a graceful drain into an immediate close.
			ctx := context.WithoutCancel(cmd.Context())
			tuneGC(os.Getenv)
			return runServe(ctx, file, cmd.OutOrStdout(), cmd.ErrOrStderr(), signals, nil)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "the configuration file (YAML)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// gatewayGCPercent is the garbage collector's target of `spillway serve`
// unless GOGC is set. A gateway's live heap is small and bounded (the
// bulkheads bound the requests in flight) while it allocates per request, so
// Go's default of 100 collects often; 400 cut the p99 latency at half the
// maximum rate from 5.4 ms to 3.9-4.1 ms on the benchmark machine
// (docs/benchmarks.md) for a heap up to five times the live data.
const gatewayGCPercent = 400

// tuneGC sets the collector's target to gatewayGCPercent unless the
// environment sets GOGC (which then applies as usual).
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gatewayGCPercent)
	}
}

// adminHosts are the Host names the admin listener answers besides
// loopback names and the address a connection came to: admin.allowed_hosts
// and the host of admin.listen when it is a name.
func adminHosts(a config.Admin) []string {
	hosts := slices.Clone(a.AllowedHosts)
	if h, _, err := net.SplitHostPort(a.Listen); err == nil && h != "" && net.ParseIP(h) == nil {
		hosts = append(hosts, h)
	}
	return hosts
}

// adminServer hardens the admin listener; its answers are small and quick.
var adminServer = config.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}

// runServe runs the gateway of file until ctx ends or signals delivers
// SIGTERM or SIGINT, then drains; SIGHUP reloads file. It calls ready, when
// not nil, with the addresses the listeners are bound to once both accept
// connections. It returns nil after a graceful shutdown, or the error that
// prevented the start or stopped a listener.
func runServe(ctx context.Context, file string, stdout, stderr io.Writer, signals <-chan os.Signal, ready func(publicAddr, adminAddr string)) error {
	cfg, err := loadConfig(file, stderr)
	if err != nil {
		return err
	}
	if err := admin.CheckListen(cfg.Admin.Listen, cfg.Admin.Token); err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	// The process's own health (goroutines, memory, file descriptors) next to
	// the gateway's metrics on the admin /metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	accessLog := newBatchWriter(stdout, accessLogFlush)
	defer accessLog.Close()
	q, err := openQueue(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if q != nil {
		// Deferred before g.Close, so run after it: the workers stop, then
		// the store is flushed and closed.
		defer func() {
			if err := q.Close(); err != nil {
				logger.Error("closing the queue", "error", err)
			}
		}()
	}
	g, err := gateway.New(cfg, gateway.Options{AccessLogWriter: accessLog, Logger: logger, Registry: reg, Queue: q})
	if err != nil {
		return err
	}
	defer g.Close()

	r := &reloader{file: file, g: g, log: logger, started: cfg}
	ao := admin.Options{Token: cfg.Admin.Token, Reload: r.reload, AllowedHosts: adminHosts(cfg.Admin)}
	p, publicLn, adminLn, err := startProcess(cfg, g, ao, tlsConfig, logger)
	if err != nil {
		return err
	}

	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	adminURL := "http://" + adminLn.Addr().String()
	fmt.Fprintf(stderr, "spillway: public %s://%s\n", scheme, publicLn.Addr())
	fmt.Fprintf(stderr, "spillway: admin  %s\n", adminURL)
	fmt.Fprintf(stderr, "spillway: status %s/api/v1/status\n", adminURL)
	if ready != nil {
		ready(publicLn.Addr().String(), adminLn.Addr().String())
	}

	for {
		select {
		case <-ctx.Done():
			return p.stop(signals, nil)
		case s := <-signals:
			if s == syscall.SIGHUP {
				_, _ = r.reload() // logged
				continue
			}
			logger.Info("signal received: draining", "signal", s.String(), "grace", p.grace)
			return p.stop(signals, nil)
		case err := <-p.errc:
			p.running--
			return p.stop(signals, err)
		}
	}
}

// queueOpenTimeout bounds the opening of the queue at start: a fresh
// cluster elects its leaders first, an embedded store recovers its files.
const queueOpenTimeout = 30 * time.Second

// openQueue opens the queue of cfg when it has an async route (nil
// otherwise): the embedded store in queue.dir, or the external cluster of
// queue.servers.
func openQueue(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*queue.Queue, error) {
	if !async.HasAsync(cfg) {
		return nil, nil
	}
	qc := async.QueueConfig(cfg.Queue)
	qc.Logger = logger
	if len(qc.Servers) > 0 {
		servers := make([]string, len(qc.Servers))
		for i, s := range qc.Servers {
			servers[i] = queue.RedactURL(s) // a URL may carry credentials
		}
		logger.Info("queue: connecting to an external NATS cluster", "servers", strings.Join(servers, ","))
	} else {
		logger.Info("queue: starting the embedded NATS JetStream store", "dir", qc.Dir, "sync_always", qc.SyncAlways)
	}
	ctx, cancel := context.WithTimeout(ctx, queueOpenTimeout)
	defer cancel()
	q, err := queue.Open(ctx, qc)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return q, nil
}

// loadConfig loads file, printing its warnings and errors to stderr.
func loadConfig(file string, stderr io.Writer) (*config.Config, error) {
	cfg, warnings, err := loadAndCheck(file)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w.String())
	}
	if err != nil {
		if !isConfigError(err) {
			return nil, err
		}
		fmt.Fprintln(stderr, err)
		return nil, fmt.Errorf("%s: invalid configuration", file)
	}
	return cfg, nil
}

func isConfigError(err error) bool {
	var list config.Errors
	var one *config.Error
	return errors.As(err, &list) || errors.As(err, &one)
}

// newServer builds an http.Server hardened by s. The body limit,
// s.MaxBody, is the gateway's own (http.MaxBytesReader, 413
// body_too_large), so that a reload changes it.
func newServer(h http.Handler, s config.Server, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// process is the running pair of listeners.
// startProcess binds the public and the admin listeners of cfg and serves
// g and its admin API on them (the public one over TLS when tlsConfig is
// set). The returned process stops them.
func startProcess(cfg *config.Config, g *gateway.Gateway, ao admin.Options, tlsConfig *tls.Config, logger *slog.Logger) (*process, net.Listener, net.Listener, error) {
	publicLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("public listener: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		_ = publicLn.Close()
		return nil, nil, nil, fmt.Errorf("admin listener: %w", err)
	}
	p := &process{
		log:     logger,
		grace:   cfg.Server.ShutdownGrace,
		public:  newServer(g, cfg.Server, logger),
		admin:   newServer(admin.Handler(g, ao), adminServer, logger),
		errc:    make(chan error, 2),
		running: 2,
	}
	// The listener terminates TLS itself, so that the gateway's framing
	// check reads the requests in clear (see gateway.ListenerOptions).
	lo := gateway.ListenerOptions{TLSConfig: tlsConfig, WriteTimeout: cfg.Server.WriteTimeout}
	gateway.ConfigureServer(p.public, lo)
	go p.serve(p.public, gateway.NewListener(publicLn, lo))
	go p.serve(p.admin, adminLn)
	return p, publicLn, adminLn, nil
}

type process struct {
	log           *slog.Logger
	grace         time.Duration
	public, admin *http.Server
	errc          chan error // each Serve's end
	running       int        // Serve calls that have not reported on errc
}

func (p *process) serve(s *http.Server, ln net.Listener) {
	p.errc <- s.Serve(ln)
}

// stop shuts the listeners down: the public one stops accepting and drains
// its requests in flight for up to the grace period (or until another
// SIGTERM/SIGINT), then closes what is left; the admin one answers until the
// public one is done. cause is the error that stopped a listener, if any.
func (p *process) stop(signals <-chan os.Signal, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.grace)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- p.public.Shutdown(ctx) }()
	var err error
wait:
	for {
		select {
		case err = <-drained:
			break wait
		case s := <-signals:
			if s != syscall.SIGHUP {
				p.log.Warn("second signal: closing the connections still open", "signal", s.String())
				cancel()
			}
		}
	}
	if err != nil {
		p.log.Warn("drain incomplete: closing the connections still open", "error", err)
		_ = p.public.Close()
	}
	if err := p.admin.Shutdown(ctx); err != nil {
		_ = p.admin.Close()
	}
	for ; p.running > 0; p.running-- {
		if err := <-p.errc; cause == nil && !errors.Is(err, http.ErrServerClosed) {
			cause = err
		}
	}
	if cause == nil {
		p.log.Info("stopped")
	}
	return cause
}

// reloader re-reads the configuration file and applies it to the gateway,
// one reload at a time (SIGHUP and the admin API may ask together).
type reloader struct {
	mu      sync.Mutex
	file    string
	g       *gateway.Gateway
	log     *slog.Logger
	started *config.Config // the listeners were built from it
}

// reload applies the file, or refuses it and keeps the running
// configuration when it is invalid, and returns what the gateway changed
// and reset, logged in one line. The listeners' settings (listen, tls,
// server but max_body, admin) take effect only at the next start: a change
// is logged.
func (r *reloader) reload() (gateway.Changes, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, warnings, err := loadAndCheck(r.file)
	for _, w := range warnings {
		r.log.Warn("configuration warning", "warning", w.String())
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			r.log.Error("configuration error", "error", line)
		}
		r.log.Error("reload refused: the running configuration stays", "file", r.file)
		return gateway.Changes{}, err
	}
	if keys := restartKeys(r.started, cfg); len(keys) > 0 {
		r.log.Warn("changed settings take effect at the next restart", "keys", strings.Join(keys, ","))
	}
	cs, err := r.g.Apply(cfg)
	if err != nil {
		r.log.Error("reload failed: the running configuration stays", "file", r.file, "error", err)
		return gateway.Changes{}, err
	}
	applied, resets := cs.Lines()
	r.log.Info("configuration reloaded", "file", r.file, "upstreams", len(cfg.Upstreams), "routes", len(cfg.Routes),
		"changes", applied, "resets", resets)
	return cs, nil
}

// restartKeys lists the top-level keys whose change a reload cannot apply.
func restartKeys(running, next *config.Config) []string {
	var keys []string
	if running.Listen != next.Listen {
		keys = append(keys, "listen")
	}
	if (running.TLS == nil) != (next.TLS == nil) || running.TLS != nil && *running.TLS != *next.TLS {
		keys = append(keys, "tls")
	}
	rs, ns := running.Server, next.Server
	rs.MaxBody, ns.MaxBody = 0, 0 // the gateway applies max_body itself
	if rs != ns {
		keys = append(keys, "server")
	}
	if !reflect.DeepEqual(running.Admin, next.Admin) {
		keys = append(keys, "admin")
	}
	if !reflect.DeepEqual(running.Queue, next.Queue) {
		keys = append(keys, "queue")
	}
	return keys
}
