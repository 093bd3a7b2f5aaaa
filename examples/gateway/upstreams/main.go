// Command upstreams serves the upstreams that examples/gateway/spillway.yaml
// names, on the same loopback addresses, so that the example gateway (and a
// drill against it) has something to proxy to:
//
//	go run ./examples/gateway/upstreams &
//	spillway serve -c examples/gateway/spillway.yaml
//	curl -s http://127.0.0.1:8080/catalog/42
//
// Every service answers /healthz and a plausible JSON body after a few
// milliseconds: the catalog (two instances) and its replica list and show
// items, recs recommends, orders accepts POSTed orders with 201. It prints one
// line per service once every listener is bound, and Ctrl-C (SIGINT or
// SIGTERM) stops it cleanly. With -free the kernel picks every port (tests).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// service is one instance of an upstream of the example file.
type service struct {
	upstream string // the upstream's name in the file
	instance string // this instance's name in the answers
	addr     string // its address in the file
}

// services are the instances of examples/gateway/spillway.yaml, in its
// order; main_test.go checks them against the file.
var services = []service{
	{"catalog", "catalog-1", "127.0.0.1:9001"},
	{"catalog", "catalog-2", "127.0.0.1:9002"},
	{"catalog-replica", "catalog-replica", "127.0.0.1:9011"},
	{"recs", "recs", "127.0.0.1:9021"},
	{"orders", "orders", "127.0.0.1:9031"},
}

// latency is the range of an answer's delay: a real service takes a few
// milliseconds, enough for the gateway's latency metrics to mean something.
const minLatency, maxLatency = 2 * time.Millisecond, 6 * time.Millisecond

func main() {
	free := flag.Bool("free", false, "listen on ports the kernel picks instead of the example file's")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *free); err != nil {
		fmt.Fprintln(os.Stderr, "upstreams:", err)
		os.Exit(1)
	}
}

// run serves every service until ctx ends, then shuts them down. It writes
// "UPSTREAM INSTANCE http://ADDR" per service once all are listening, so
// that a caller with free ports learns them.
func run(ctx context.Context, out io.Writer, free bool) error {
	var servers []*http.Server
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, s := range services {
		addr := s.addr
		if free {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		servers = append(servers, &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second})
		fmt.Fprintf(out, "%s %s http://%s\n", s.upstream, s.instance, l.Addr())
	}

	errs := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	// The gateway's answers in flight take milliseconds: a second is plenty.
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(shutdown); serr != nil {
			srv.Close()
		}
	}
	wg.Wait()
	return err
}

// handler answers as the service would: /healthz, then its own paths.
func (s service) handler() http.Handler {
	var orders atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]string{"status": "ok", "instance": s.instance})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(minLatency + rand.N(maxLatency-minLatency)):
		case <-r.Context().Done():
			return // the gateway gave up on this attempt
		}
		switch s.upstream {
		case "catalog", "catalog-replica":
			s.catalog(w, r)
		case "recs":
			reply(w, http.StatusOK, []map[string]any{{"id": 7, "score": 0.92}, {"id": 12, "score": 0.87}, {"id": 3, "score": 0.61}})
		case "orders":
			if r.Method != http.MethodPost {
				reply(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST an order"})
				return
			}
			reply(w, http.StatusCreated, map[string]any{"order": orders.Add(1), "status": "created", "instance": s.instance})
		}
	})
	return mux
}

// catalog lists the items at its root and shows one under it (/catalog/42).
func (s service) catalog(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		reply(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET or HEAD"})
		return
	}
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, "/catalog"), "/")
	if id == "" {
		reply(w, http.StatusOK, map[string]any{"instance": s.instance, "items": []map[string]any{
			{"id": "1", "name": "kettle", "price": 39.9}, {"id": "2", "name": "teapot", "price": 24.5},
		}})
		return
	}
	reply(w, http.StatusOK, map[string]any{"instance": s.instance, "id": id, "name": "item " + id, "price": 19.9})
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An error here is a client gone: nothing to do.
	_ = json.NewEncoder(w).Encode(body)
}
