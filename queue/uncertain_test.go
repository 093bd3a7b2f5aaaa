package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/internal/stallproxy"
)

// TestUnacknowledgedPublishIsUncertain: the store gets the job but its
// acknowledgement never comes back within Timeout (the answers are held,
// as from a paused node). That is ErrUncertain (queue_timeout), not
// ErrUnavailable ("not stored"): the job was stored, and a retry with the
// same key finds it.
func TestUnacknowledgedPublishIsUncertain(t *testing.T) {
	s := startServer(t, t.TempDir())
	p, err := stallproxy.New(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	const timeout = 300 * time.Millisecond
	q, err := Open(t.Context(), Config{Servers: []string{"nats://" + p.Addr()}, Prefix: "HELD", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m := Message{Key: "order-7", Data: []byte("seven")}

	p.Hold()
	_, _, err = q.Enqueue(t.Context(), "orders", m)
	if !errors.Is(err, ErrUncertain) || errors.Is(err, ErrUnavailable) || ReasonOf(err) != ReasonTimeout {
		t.Fatalf("enqueue without an acknowledgement = %v (reason %s), want ErrUncertain / queue_timeout", err, ReasonOf(err))
	}
	p.Resume()

	id, dup, err := q.Enqueue(t.Context(), "orders", m)
	if err != nil || !dup {
		t.Fatalf("retry with the same key = %s %v %v, want the job stored by the uncertain publish", id, dup, err)
	}
	if st, err := q.Stats(t.Context(), "orders"); err != nil || st.Pending != 1 {
		t.Fatalf("stats = %+v %v, want the one job", st, err)
	}
}
