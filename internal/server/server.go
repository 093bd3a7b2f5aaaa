// Package server runs the gateway's process: the queue of its async routes
// (OpenQueue), its public and admin listeners (Start), and the whole of
// `spillway serve` (Run: start, reload on SIGHUP or the admin API, drain on
// SIGTERM). The serve command and the demo both start through it.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/gateway/telemetry"
	"github.com/spillway-dev/spillway/queue"
)

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

// Run runs the gateway of o (its file, or its flags) until ctx ends or
// signals delivers SIGTERM or SIGINT, then drains; SIGHUP reloads the file.
// It calls ready, when not nil, with the addresses the listeners are bound
// to once both accept connections. It returns nil after a graceful
// shutdown, or the error that prevented the start or stopped a listener.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer, signals <-chan os.Signal, ready func(publicAddr, adminAddr string)) error {
	src, err := o.source()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(src.load, src.name, stderr)
	if err != nil {
		return err
	}
	if err := admin.CheckListen(cfg.Admin.Listen, len(cfg.Admin.AllTokens())); err != nil {
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
	q, err := OpenQueue(ctx, cfg, logger)
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
	tracer, stopTelemetry, err := startTelemetry(cfg.Telemetry, reg, logger)
	if err != nil {
		return err
	}
	// Deferred before g.Close, so run after it: the last spans are sent.
	defer stopTelemetry()
	g, err := gateway.New(cfg, gateway.Options{AccessLogWriter: accessLog, Logger: logger, Registry: reg, Queue: q, Tracer: tracer})
	if err != nil {
		return err
	}
	defer g.Close()

	tokens := admin.NewTokenSet(cfg.Admin.Token, cfg.Admin.Tokens)
	r := &reloader{load: src.load, file: src.name, g: g, tokens: tokens, log: logger, started: cfg}
	ao := admin.Options{TokenSet: tokens, Reload: r.reload, AllowedHosts: adminHosts(cfg.Admin)}
	p, err := Start(cfg, g, ao, tlsConfig, logger)
	if err != nil {
		return err
	}
	debug.FreeOSMemory() // the file's parse garbage, as after a reload
	publicLn, adminLn := p.Public, p.Admin

	printStart(stderr, tlsConfig != nil, publicLn.Addr(), adminLn.Addr(), src.newToken)
	if ready != nil {
		ready(publicLn.Addr().String(), adminLn.Addr().String())
	}

	for {
		select {
		case <-ctx.Done():
			return p.Stop(signals, nil)
		case s := <-signals:
			if s == syscall.SIGHUP {
				_, _ = r.reload() // logged
				continue
			}
			logger.Info("signal received: draining", "signal", s.String(), "grace", p.grace)
			return p.Stop(signals, nil)
		case err := <-p.Failed():
			return p.Stop(signals, err)
		}
	}
}

// telemetryShutdown bounds the export of the last spans and metrics at
// exit, when the endpoint does not answer.
const telemetryShutdown = 5 * time.Second

// startTelemetry starts the OTLP export of the telemetry: section t, when
// the file has one (a nil Tracer otherwise: the gateway traces nothing);
// stop flushes and ends it. The exporters' errors (an endpoint down or
// refusing the key) go to logger.
func startTelemetry(t *config.Telemetry, reg *prometheus.Registry, logger *slog.Logger) (tr gateway.Tracer, stop func(), err error) {
	if t == nil {
		return nil, func() {}, nil
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("telemetry: export failed", "error", err) }))
	p, err := telemetry.New(t, reg)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("telemetry: exporting over OTLP", "endpoint", t.OTLP.Endpoint, "sample_ratio", t.Traces.SampleRatio,
		"metrics_interval", t.Metrics.Interval)
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), telemetryShutdown)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			logger.Warn("telemetry: the last export failed", "error", err)
		}
	}, nil
}

// printStart prints the bound addresses (tests and scripts parse these
// lines) and a token generated for this run, once.
func printStart(stderr io.Writer, tls bool, public, admin net.Addr, newToken string) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	fmt.Fprintf(stderr, "spillway: public %s://%s\n", scheme, public)
	fmt.Fprintf(stderr, "spillway: admin  http://%s\n", admin)
	fmt.Fprintf(stderr, "spillway: status http://%s/api/v1/status\n", admin)
	fmt.Fprintf(stderr, "spillway: dashboard http://%s/dashboard/\n", admin)
	if newToken != "" {
		fmt.Fprintf(stderr, "spillway: admin token %s (generated, printed once: send it as Authorization: Bearer)\n", newToken)
	}
}

// queueOpenTimeout bounds the opening of the queue at start: a fresh
// cluster elects its leaders first, an embedded store recovers its files.
const queueOpenTimeout = 30 * time.Second

// OpenQueue opens the queue of cfg when it has an async route or a shared
// rate limit (nil otherwise): the embedded store in queue.dir, or the
// external cluster of queue.servers.
func OpenQueue(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*queue.Queue, error) {
	if !gateway.NeedsQueue(cfg) {
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

// loadConfig loads file with load, printing its warnings and errors to
// stderr.
func loadConfig(load func() (*config.Config, []config.Warning, error), file string, stderr io.Writer) (*config.Config, error) {
	cfg, warnings, err := load()
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

// LoadAndCheck loads file and builds what serve would run from it
// (gateway.Check): validate and serve accept the same files and report the
// same warnings, the configuration's and the policies', sorted by position.
func LoadAndCheck(file string) (*config.Config, []config.Warning, error) {
	return check(config.Load(file))
}

// check builds what serve would run from a configuration just loaded.
func check(cfg *config.Config, warnings []config.Warning, err error) (*config.Config, []config.Warning, error) {
	if err != nil {
		return nil, warnings, err
	}
	more, err := gateway.Check(cfg)
	if err != nil {
		return nil, warnings, err
	}
	warnings = append(warnings, more...)
	slices.SortStableFunc(warnings, func(a, b config.Warning) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return cfg, warnings, nil
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

// Process is a running pair of listeners: the public one serving the
// gateway, the admin one its admin API. Start makes one; Stop ends it.
type Process struct {
	// Public and Admin are the bound listeners (their addresses are the
	// ones to print: a ":0" in the configuration is a port now).
	Public, Admin net.Listener
	log           *slog.Logger
	grace         time.Duration
	public, admin *http.Server
	errc          chan error // each Serve's end
	running       int        // Serve calls that have not reported on errc
}

// Start binds the public and the admin listeners of cfg and serves g and
// its admin API on them (the public one over TLS when tlsConfig is set).
func Start(cfg *config.Config, g *gateway.Gateway, ao admin.Options, tlsConfig *tls.Config, logger *slog.Logger) (*Process, error) {
	publicLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("public listener: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		_ = publicLn.Close()
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	// The admin server's shutdown ends its event streams, which would
	// otherwise keep it waiting for the whole grace.
	streamsDone := make(chan struct{})
	ao.Done = streamsDone
	p := &Process{
		Public:  publicLn,
		Admin:   adminLn,
		log:     logger,
		grace:   cfg.Server.ShutdownGrace,
		public:  newServer(g, cfg.Server, logger),
		admin:   newServer(admin.Handler(g, ao), adminServer, logger),
		errc:    make(chan error, 2),
		running: 2,
	}
	p.admin.RegisterOnShutdown(sync.OnceFunc(func() { close(streamsDone) }))
	// Shutdown does not wait for hijacked connections: the gateway closes
	// its WebSockets itself, with a close frame, as the drain begins.
	p.public.RegisterOnShutdown(g.CloseUpgrades)
	// The listener terminates TLS itself, so that the gateway's framing
	// check reads the requests in clear (see gateway.ListenerOptions).
	lo := gateway.ListenerOptions{TLSConfig: tlsConfig, WriteTimeout: cfg.Server.WriteTimeout, H2C: cfg.Server.H2C}
	gateway.ConfigureServer(p.public, lo)
	go p.serve(p.public, gateway.NewListener(publicLn, lo))
	go p.serve(p.admin, adminLn)
	return p, nil
}

func (p *Process) serve(s *http.Server, ln net.Listener) {
	p.errc <- s.Serve(ln)
}

// Failed delivers the error of a listener that stopped serving on its own
// (it failed): pass it to Stop.
func (p *Process) Failed() <-chan error { return p.errc }

// Stop shuts the listeners down: the public one stops accepting and drains
// its requests in flight for up to the grace period (or until another
// SIGTERM/SIGINT on signals, which may be nil), then closes what is left;
// the admin one answers until the public one is done. failed is what
// Failed delivered, nil when no listener failed; Stop returns it, or the
// error another listener stopped with, nil after a clean stop.
func (p *Process) Stop(signals <-chan os.Signal, failed error) error {
	cause := failed
	if failed != nil {
		p.running-- // its Serve has reported
	}
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
	load    func() (*config.Config, []config.Warning, error) // re-reads the file
	file    string
	g       *gateway.Gateway
	tokens  *admin.TokenSet // the admin listener's, replaced by a reload
	log     *slog.Logger
	started *config.Config // the listeners were built from it
}

// reload applies the file, or refuses it and keeps the running
// configuration when it is invalid, and returns what the gateway changed
// and reset, logged in one line. The admin tokens change with the rest; the
// listeners' other settings (listen, tls, server but max_body, admin.listen
// and admin.allowed_hosts, queue) take effect only at the next start: a
// change is logged and listed in the answer. A file that would leave the
// admin listener running off loopback with no token is refused.
func (r *reloader) reload() (admin.ReloadResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, warnings, err := r.load()
	for _, w := range warnings {
		r.log.Warn("configuration warning", "warning", w.String())
	}
	if err == nil {
		// The listener keeps the address it started on until a restart.
		if lerr := admin.CheckListen(r.started.Admin.Listen, len(cfg.Admin.AllTokens())); lerr != nil {
			err = &config.Error{File: r.file, Path: "$.admin", Msg: "admin: the admin listener runs on " + r.started.Admin.Listen + " until a restart: " + lerr.Error()}
		}
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			r.log.Error("configuration error", "error", line)
		}
		r.log.Error("reload refused: the running configuration stays", "file", r.file)
		return admin.ReloadResult{}, err
	}
	keys := restartKeys(r.started, cfg)
	if len(keys) > 0 {
		r.log.Warn("changed settings take effect at the next restart", "keys", strings.Join(keys, ","))
	}
	cs, err := r.g.Apply(cfg)
	if err != nil {
		r.log.Error("reload failed: the running configuration stays", "file", r.file, "error", err)
		return admin.ReloadResult{}, err
	}
	r.tokens.Set(cfg.Admin.Token, cfg.Admin.Tokens)
	// Reading the file leaves garbage in proportion to it (a 10,000-route
	// file about 300 MB under serve's GOGC=400): hand it back now rather
	// than keep it as heap headroom until the next cycles.
	debug.FreeOSMemory()
	applied, resets := cs.Lines()
	r.log.Info("configuration reloaded", "file", r.file, "upstreams", len(cfg.Upstreams), "routes", len(cfg.Routes),
		"changes", applied, "resets", resets)
	return admin.ReloadResult{Changes: cs, RestartRequired: keys}, nil
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
	// The tokens a reload applies (reloader.reload); not the listener's.
	if running.Admin.Listen != next.Admin.Listen {
		keys = append(keys, "admin.listen")
	}
	if !slices.Equal(running.Admin.AllowedHosts, next.Admin.AllowedHosts) {
		keys = append(keys, "admin.allowed_hosts")
	}
	if !reflect.DeepEqual(running.Queue, next.Queue) {
		keys = append(keys, "queue")
	}
	// The exporters and the sampler are made once, at start.
	if !reflect.DeepEqual(running.Telemetry, next.Telemetry) {
		keys = append(keys, "telemetry")
	}
	return keys
}
