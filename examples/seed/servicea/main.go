// Command servicea is service A of the seed's architecture: GET
// /shop/items/{id} asks service B for the item through spillwayhttp (retry,
// breaker, A's own timeouts) and, when B fails, serves the last good answer
// for the item with the header Seed-Fallback: last-good. Its chaos
// switches, which make B look slow or down from A's side, are served on a
// second loopback listener (never behind the gateway):
//
//	go run ./examples/seed/servicea -listen 127.0.0.1:8081 -b http://127.0.0.1:8082
//	curl http://127.0.0.1:8091/chaos                    # the switches and A's breaker on B
//	curl -X PUT http://127.0.0.1:8091/chaos/b-down      # B down, as A sees it
//	curl -X DELETE http://127.0.0.1:8091/chaos/b-down   # B back
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"

	"github.com/spillway-dev/spillway/examples/seed/seed"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve A on (the gateway's upstream service-a)")
	chaosAddr := flag.String("chaos", "127.0.0.1:8091", "loopback address of A's chaos switches")
	b := flag.String("b", "http://127.0.0.1:8082", "service B's URL")
	slow := flag.Bool("b-slow", false, fmt.Sprintf("start with the b-slow switch on (%s on %.0f%% of the calls to B)", seed.DefaultSlowDelay, seed.DefaultSlowRate*100))
	down := flag.Bool("b-down", false, "start with the b-down switch on (every call to B fails)")
	flag.Parse()
	if err := run(*listen, *chaosAddr, *b, *slow, *down); err != nil {
		fmt.Fprintln(os.Stderr, "servicea:", err)
		os.Exit(1)
	}
}

func run(listen, chaosAddr, b string, slow, down bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	a, err := seed.NewServiceA(seed.AConfig{B: b})
	if err != nil {
		return err
	}
	defer a.Close()
	_ = a.Switch(seed.SwitchBSlow, slow)
	_ = a.Switch(seed.SwitchBDown, down)
	fmt.Printf("service A on http://%s → B at %s (try: curl -i http://%s/shop/items/1)\n", listen, b, listen)
	fmt.Printf("chaos switches on http://%s/chaos (PUT or DELETE /chaos/b-slow, /chaos/b-down)\n", chaosAddr)
	// Either listener failing stops the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []struct {
		addr string
		h    http.Handler
	}{{listen, a}, {chaosAddr, a.ChaosHandler()}} {
		wg.Go(func() {
			errs[i] = seed.ListenAndServe(ctx, srv.addr, srv.h)
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
