package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spillway-dev/spillway/internal/natstest"
)

// TestScaleOutTwoQueues runs two Queues (two gateways) on one external
// server: their Workers share one durable consumer and every job is
// delivered exactly once when handlers succeed.
func TestScaleOutTwoQueues(t *testing.T) {
	s := startServer(t, t.TempDir())
	cfg := Config{Servers: []string{s.ClientURL()}, Prefix: "SCALE"}
	q1, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q1.Close()
	q2, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if q1.Embedded() {
		t.Fatal("external queue says embedded")
	}

	var mu sync.Mutex
	seen := map[string]int{}
	by := map[int]int{}
	handler := func(n int) Handler {
		return func(_ context.Context, j *Job) Result {
			mu.Lock()
			seen[j.ID]++
			by[n]++
			mu.Unlock()
			return Result{Outcome: Delivered}
		}
	}
	w1, err := q1.Consume("orders", fast(Policy{Concurrency: 4}), handler(1), WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w1)
	w2, err := q2.Consume("orders", fast(Policy{Concurrency: 4}), handler(2), WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w2)

	const n = 400
	ids := map[string]bool{}
	for i := range n {
		q := q1
		if i%2 == 1 {
			q = q2
		}
		id, _, err := q.Enqueue(t.Context(), "orders", Message{Data: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	eventually(t, "all delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	// Both are drained (nothing pending), so no late duplicate can come.
	eventually(t, "drained", func() bool {
		st, err := q1.Stats(t.Context(), "orders")
		return err == nil && st.Pending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		if !ids[id] || c != 1 {
			t.Fatalf("job %s delivered %d times (known %v)", id, c, ids[id])
		}
	}
	if by[1] == 0 || by[2] == 0 {
		t.Logf("work split %v (one worker took everything)", by)
	}
}

// TestServerDownUnavailable: with the external server gone, Enqueue fails
// with ErrUnavailable at once (no buffering while disconnected), within
// Timeout and a little.
func TestServerDownUnavailable(t *testing.T) {
	s := startServer(t, t.TempDir())
	const timeout = 500 * time.Millisecond
	q, err := Open(t.Context(), Config{Servers: []string{s.ClientURL()}, Prefix: "DOWN", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, _, err := q.Enqueue(t.Context(), "orders", Message{}); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	// A publish written before the client saw the server go would be an
	// unknown outcome (ErrUncertain), not a refusal.
	eventually(t, "the client to see the server gone", func() bool { return !q.q.nc.IsConnected() })
	for range 3 {
		start := time.Now()
		_, _, err := q.Enqueue(t.Context(), "orders", Message{Data: []byte("x")})
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || ReasonOf(err) != ReasonUnavailable {
			t.Fatalf("enqueue with the server down = %v", err)
		}
		if took > timeout+250*time.Millisecond {
			t.Fatalf("enqueue took %v, want < %v", took, timeout+250*time.Millisecond)
		}
	}
	if _, err := q.Status(t.Context(), "0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("status with the server down = %v", err)
	}
}

// TestOpenUnreachable: with no server to reach, Open keeps trying until
// its context ends, then fails with ErrUnavailable.
func TestOpenUnreachable(t *testing.T) {
	const wait = 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	start := time.Now()
	_, err := Open(ctx, Config{Servers: []string{"nats://127.0.0.1:1"}, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took < wait {
		t.Fatalf("Open gave up after %v, before its context ended (%v)", took, wait)
	}
}

// TestOpenWaitsForTheServer: Spillway may start before NATS; Open connects
// once the server is up, within its context.
func TestOpenWaitsForTheServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	type opened struct {
		q   *Queue
		err error
	}
	done := make(chan opened, 1)
	go func() {
		q, err := Open(t.Context(), Config{Servers: []string{fmt.Sprintf("nats://127.0.0.1:%d", port)}, Timeout: 200 * time.Millisecond, Prefix: "LATE"})
		done <- opened{q, err}
	}()
	natstest.Start(t, &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30})
	o := <-done
	if o.err != nil {
		t.Fatalf("Open = %v, want it connected once the server started", o.err)
	}
	defer o.q.Close()
	if _, _, err := o.q.Enqueue(t.Context(), "orders", Message{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

// TestStorageFull: an embedded store with a tiny disk limit refuses a job
// that does not fit with ErrFull, and stores nothing of it.
func TestStorageFull(t *testing.T) {
	q := openEmbedded(t, func(c *Config) { c.MaxDisk = 256 << 10 })
	data := make([]byte, 16<<10)
	var full error
	stored := 0
	for range 64 {
		_, _, err := q.Enqueue(t.Context(), "orders", Message{Data: data})
		if err != nil {
			full = err
			break
		}
		stored++
	}
	if !errors.Is(full, ErrFull) || ReasonOf(full) != ReasonFull {
		t.Fatalf("after %d jobs: %v, want ErrFull", stored, full)
	}
	st, err := q.Stats(t.Context(), "orders")
	if err != nil || st.Pending != stored {
		t.Fatalf("stats = %+v %v, want %d pending", st, err, stored)
	}
	t.Logf("stored %d jobs of 16 KiB, then: %v", stored, full)
}
