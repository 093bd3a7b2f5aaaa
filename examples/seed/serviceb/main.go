// Command serviceb is service B of the seed's architecture: the downstream
// that service A calls. GET /items/{id} answers the item, GET /healthz ok.
//
//	go run ./examples/seed/serviceb -listen 127.0.0.1:8082
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/spillway-dev/spillway/examples/seed/seed"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to serve B on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Printf("service B on http://%s (try: curl http://%s/items/1)\n", *listen, *listen)
	if err := seed.ListenAndServe(ctx, *listen, seed.NewServiceB()); err != nil {
		fmt.Fprintln(os.Stderr, "serviceb:", err)
		os.Exit(1)
	}
}
