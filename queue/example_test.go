package queue_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spillway-dev/spillway/queue"
)

// A queue on an embedded store: enqueue a job, deliver it with a worker,
// read its status.
func Example() {
	dir, err := os.MkdirTemp("", "spillway-queue-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{Dir: dir, MaxDisk: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer q.Close()

	id, _, err := q.Enqueue(ctx, "emails", queue.Message{Key: "welcome-42", Data: []byte("to: ada@example.com")})
	if err != nil {
		// queue_full or queue_unavailable: not stored; queue_timeout: may
		// have been stored, retry with the same key.
		fmt.Println("enqueue failed:", queue.ReasonOf(err))
		return
	}
	delivered := make(chan struct{})
	w, err := q.Consume("emails", queue.Policy{MaxAttempts: 5}, func(ctx context.Context, j *queue.Job) queue.Result {
		fmt.Printf("sending %q (attempt %d)\n", j.Data, j.Attempt)
		defer close(delivered)
		return queue.Result{Outcome: queue.Delivered, Status: 250}
	}, queue.WorkerOptions{})
	if err != nil {
		panic(err)
	}
	<-delivered
	if err := w.Stop(ctx); err != nil {
		panic(err)
	}
	st, err := q.Status(ctx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.State, st.Attempts, st.LastStatus)

	// The same message with its idempotency key again: nothing new is
	// stored. Another message with that key is refused.
	again, duplicate, _ := q.Enqueue(ctx, "emails", queue.Message{Key: "welcome-42", Data: []byte("to: ada@example.com")})
	fmt.Println(again == id, duplicate)
	_, _, err = q.Enqueue(ctx, "emails", queue.Message{Key: "welcome-42", Data: []byte("to: eve@example.com")})
	fmt.Println(queue.ReasonOf(err))
	// Output:
	// sending "to: ada@example.com" (attempt 1)
	// delivered 1 250
	// true true
	// idempotency_key_reused
}

// Dead letters: list them page by page, then replay them all.
func ExampleQueue_DeadLetters() {
	dir, err := os.MkdirTemp("", "spillway-queue-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{Dir: dir, MaxDisk: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer q.Close()

	done := make(chan struct{})
	w, err := q.Consume("webhooks", queue.Policy{}, func(ctx context.Context, j *queue.Job) queue.Result {
		defer close(done)
		return queue.Result{Outcome: queue.Rejected, Status: 400, Reason: "upstream_error"}
	}, queue.WorkerOptions{})
	if err != nil {
		panic(err)
	}
	if _, _, err := q.Enqueue(ctx, "webhooks", queue.Message{Data: []byte(`{"event":"paid"}`)}); err != nil {
		panic(err)
	}
	<-done
	_ = w.Stop(ctx) // the dead letter is written before the job is acknowledged

	var after uint64
	for {
		page, next, err := q.DeadLetters(ctx, "webhooks", after, 50)
		if err != nil {
			panic(err)
		}
		for _, d := range page {
			fmt.Println(d.Queue, d.Attempts, d.LastStatus, d.LastReason, string(d.Data))
		}
		if next == 0 {
			break
		}
		after = next
	}
	n, err := q.ReplayAll(ctx, "webhooks")
	fmt.Println("replayed", n, err)
	// Output:
	// webhooks 1 400 upstream_error {"event":"paid"}
	// replayed 1 <nil>
}
