package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// The gRPC comparison (issue 15): unary calls of grpc-go clients to a
// grpc-go TestService on loopback, over cleartext HTTP/2 (h2c), through
//
//	floor     a bare Go h2c reverse proxy: httputil.ReverseProxy with a
//	          BufferPool whose Transport speaks unencrypted HTTP/2 only, on
//	          an http.Server serving h2c
//	spillway  the gateway with every policy of the defaults on (breaker,
//	          retry with its budget, bulkhead, time limits, pool) on its
//	          public listener with server.h2c, upstream http2: true
//
// in rounds that alternate the two, each with the same closed loop of
// -grpc.conc concurrent callers for -grpc.duration; it prints each round's
// calls/s and p99 and the medians. Client, proxies and upstream share the
// machine. Run with
//
//	go test -run GRPCUnary -grpc.rounds 6 -grpc.duration 5s -v .
var (
	grpcRounds   = flag.Int("grpc.rounds", 0, "rounds of the gRPC comparison (0: skipped)")
	grpcDuration = flag.Duration("grpc.duration", 5*time.Second, "length of one target's run in a round")
	grpcConc     = flag.Int("grpc.conc", 32, "concurrent callers")
)

type grpcEcho struct {
	testpb.UnimplementedTestServiceServer
}

func (grpcEcho) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

// grpcBuffers is the floor's BufferPool: the issue measures the floor as a
// pooled ReverseProxy (without one it allocates 32 KiB per copy).
type grpcBuffers struct{ sync.Pool }

func (b *grpcBuffers) Get() []byte  { return *b.Pool.Get().(*[]byte) }
func (b *grpcBuffers) Put(s []byte) { b.Pool.Put(&s) }

// serveH2C serves h on 127.0.0.1 over HTTP/1 and h2c; it returns the address
// and the server's stop.
func serveH2C(t *testing.T, h http.Handler, o *gateway.ListenerOptions) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	var l net.Listener = ln
	if o != nil {
		gateway.ConfigureServer(srv, *o)
		l = gateway.NewListener(ln, *o)
	} else {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
	go func() { _ = srv.Serve(l) }()
	return ln.Addr().String(), func() { _ = srv.Close() }
}

func TestGRPCUnary(t *testing.T) {
	if *grpcRounds == 0 {
		t.Skip("run with -grpc.rounds N")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := grpc.NewServer()
	testpb.RegisterTestServiceServer(up, grpcEcho{})
	go func() { _ = up.Serve(ln) }()
	defer up.Stop()
	upAddr := ln.Addr().String()

	// The floor.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	target := &url.URL{Scheme: "http", Host: upAddr}
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  &http.Transport{Protocols: &p},
		BufferPool: &grpcBuffers{Pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
		ErrorLog:   log.New(io.Discard, "", 0),
	}
	floorAddr, stopFloor := serveH2C(t, rp, nil)
	defer stopFloor()

	// Spillway.
	cfg, _, err := config.Parse("bench.yaml", fmt.Appendf(nil, `upstreams:
  svc: {instances: ["http://%s"], http2: true}
routes:
  - name: svc
    match: {path_prefix: /grpc.testing.TestService/}
    upstream: svc
`, upAddr), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gwAddr, stopGW := serveH2C(t, g, &gateway.ListenerOptions{H2C: true})
	defer stopGW()

	targets := []struct{ name, addr string }{{"floor", floorAddr}, {"spillway", gwAddr}}
	rates := map[string][]float64{}
	p99s := map[string][]time.Duration{}
	for round := range *grpcRounds {
		for i := range targets {
			tg := targets[(round+i)%len(targets)] // alternate who goes first
			rate, p99 := grpcLoad(t, tg.addr, *grpcConc, *grpcDuration)
			rates[tg.name] = append(rates[tg.name], rate)
			p99s[tg.name] = append(p99s[tg.name], p99)
			t.Logf("round %d %-8s %8.0f calls/s  p99 %v", round+1, tg.name, rate, p99.Round(10*time.Microsecond))
		}
	}
	fr, sr := median(rates["floor"]), median(rates["spillway"])
	t.Logf("medians: floor %.0f calls/s p99 %v; spillway %.0f calls/s p99 %v; spillway/floor %.2fx",
		fr, medianD(p99s["floor"]).Round(10*time.Microsecond), sr, medianD(p99s["spillway"]).Round(10*time.Microsecond), sr/fr)
}

// grpcLoad runs conc callers of UnaryCall against addr for d and returns the
// calls per second and the 99th percentile latency.
func grpcLoad(t *testing.T, addr string, conc int, d time.Duration) (float64, time.Duration) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 64)}}
	if _, err := c.UnaryCall(context.Background(), req); err != nil { // connect, warm up
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if _, err := c.UnaryCall(ctx, req); err != nil {
					// grpc-go's own timer for ctx's deadline may fire
					// before ctx's.
					if ctx.Err() == nil && status.Code(err) != codes.DeadlineExceeded {
						t.Errorf("call: %v", err)
					}
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	if len(all) == 0 {
		t.Fatal("no call completed")
	}
	slices.Sort(all)
	return float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianD(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
