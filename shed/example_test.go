package shed_test

import (
	"context"
	"fmt"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/shed"
)

func Example() {
	b := bulkhead.MustNew(bulkhead.Config{Name: "search", MaxConcurrent: 10})
	s := shed.MustNew(shed.Config{Name: "search", Limiter: b}) // sheddable from 50 %, default from 90 %

	// Seven calls hold their slots: 70 % utilization.
	for range 7 {
		if _, ok := b.TryAcquire(); !ok {
			return
		}
	}
	for _, p := range []spillway.Priority{spillway.PrioritySheddable, spillway.PriorityDefault, spillway.PriorityCritical} {
		ctx := spillway.WithPriority(context.Background(), p)
		if _, err := s.Acquire(ctx); err != nil {
			fmt.Println(p, "refused:", spillway.ReasonOf(err))
			continue
		}
		fmt.Println(p, "admitted")
	}
	// Output:
	// sheddable refused: bulkhead_full
	// default admitted
	// critical admitted
}
