package pool_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
)

func Example() {
	clock := spillway.NewManualClock(0)
	p, err := pool.New([]string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}, pool.Options{
		Name:    "catalog",
		Balance: pool.RoundRobin,
		Outlier: config.Outlier{ConsecutiveFailures: 2, Ejection: 30 * time.Second, MaxEjection: 300 * time.Second, MaxEjected: 0.5},
		Clock:   clock,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	p.Start() // no Health: nothing to start, but this is where checks begin
	defer p.Close()

	// One attempt: pick, begin, end.
	in, _ := p.Pick(nil)
	in.Begin()
	fmt.Println("attempt 1 to", in)
	in.End(true) // it failed (a 503, say): the retry avoids it
	retry, _ := p.Pick(in)
	fmt.Println("retry to", retry)
	retry.Begin()
	retry.End(false)

	// Another failure in a row ejects the first instance for 30s.
	in.Begin()
	in.End(true)
	fmt.Println("ejected:", p.EjectedCount())
	next, _ := p.Pick(nil)
	fmt.Println("next to", next)

	// With no panic threshold, a pool whose instances are all out refuses.
	solo, _ := pool.New([]string{"http://10.0.0.3:8080"}, pool.Options{
		Name:    "search",
		Outlier: config.Outlier{ConsecutiveFailures: 1, Ejection: 30 * time.Second, MaxEjected: 1},
		Clock:   clock,
		Logger:  slog.New(slog.DiscardHandler),
	})
	only, _ := solo.Pick(nil)
	only.Begin()
	only.End(true)
	_, err = solo.Pick(nil)
	fmt.Println(spillway.ReasonOf(err), errors.Is(err, pool.ErrNoHealthyInstance))
	fmt.Println(err)
	// Output:
	// attempt 1 to http://10.0.0.1:8080
	// retry to http://10.0.0.2:8080
	// ejected: 1
	// next to http://10.0.0.2:8080
	// no_healthy_instance true
	// spillway: pool "search": no healthy instance (retry after 30s)
}

func ExamplePool_Status() {
	p, _ := pool.New([]string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}, pool.Options{Name: "catalog", Balance: pool.LeastRequest})
	defer p.Close()
	busy := p.Instances()[0]
	busy.Begin()
	in, _ := p.Pick(nil) // least_request: the idle instance
	fmt.Println("picked", in)
	out, _ := json.Marshal(p.Status())
	fmt.Println(string(out))
	// Output:
	// picked http://10.0.0.2:8080
	// [{"url":"http://10.0.0.1:8080","healthy":true,"ejected":false,"in_flight":1},{"url":"http://10.0.0.2:8080","healthy":true,"ejected":false,"in_flight":0}]
}
