package spillway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/spillway-dev/spillway"
)

func TestPriorityRoundTrips(t *testing.T) {
	if got := spillway.PriorityOf(context.Background()); got != spillway.PriorityDefault {
		t.Fatalf("PriorityOf(Background) = %v, want default", got)
	}
	for _, p := range []spillway.Priority{spillway.PrioritySheddable, spillway.PriorityDefault, spillway.PriorityCritical} {
		if got := spillway.PriorityOf(spillway.WithPriority(context.Background(), p)); got != p {
			t.Errorf("PriorityOf(WithPriority(%v)) = %v", p, got)
		}
		if got, ok := spillway.ParsePriority(p.String()); !ok || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p.String(), got, ok)
		}
	}
	for _, s := range []string{"", "Critical", "high", "low"} {
		if got, ok := spillway.ParsePriority(s); ok || got != spillway.PriorityDefault {
			t.Errorf("ParsePriority(%q) = %v, %v; want default, false", s, got, ok)
		}
	}
	if !(spillway.PrioritySheddable < spillway.PriorityDefault && spillway.PriorityDefault < spillway.PriorityCritical) {
		t.Error("priorities are not ordered sheddable < default < critical")
	}
	if s := spillway.Priority(7).String(); s != "unknown" {
		t.Errorf("Priority(7).String() = %q", s)
	}
}

func TestPriorityOfAllocatesNothing(t *testing.T) {
	ctx := spillway.WithPriority(context.Background(), spillway.PriorityCritical)
	if n := testing.AllocsPerRun(100, func() { _ = spillway.PriorityOf(ctx) }); n != 0 {
		t.Fatalf("PriorityOf allocates %v times", n)
	}
}

func ExampleWithPriority() {
	ctx := spillway.WithPriority(context.Background(), spillway.PrioritySheddable)
	fmt.Println(spillway.PriorityOf(ctx), spillway.PriorityOf(context.Background()))
	// Output: sheddable default
}
