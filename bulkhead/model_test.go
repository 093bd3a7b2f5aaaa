package bulkhead_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

// model is the bulkhead's specification: a counter, a limit and a FIFO queue.
type model struct {
	limit, maxWaiting int
	inFlight          int
	queue             []int // caller ids, oldest first
	rejected          int
}

// admit moves the oldest waiters in while there is room; it returns them.
func (m *model) admit() []int {
	var in []int
	for len(m.queue) > 0 && m.inFlight < m.limit {
		in = append(in, m.queue[0])
		m.queue = m.queue[1:]
		m.inFlight++
	}
	return in
}

// caller is one Acquire running in the background.
type caller struct {
	cancel context.CancelFunc
	done   chan result
}

// bubbleTB hides the *testing.T from rapid, which would otherwise call
// T.Deadline, which a synctest bubble forbids.
type bubbleTB struct{ *testing.T }

// TestModel drives a bulkhead and the model with the same random sequence of
// arrivals, releases, cancellations, probes and resizes, and compares them
// after every step. testing/synctest makes "the waiters have settled"
// observable (synctest.Wait), so the comparison is exact.
func TestModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rapid.Check(bubbleTB{t}, func(rt *rapid.T) {
			m := &model{limit: rapid.IntRange(1, 4).Draw(rt, "limit"), maxWaiting: rapid.IntRange(0, 4).Draw(rt, "maxWaiting")}
			b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: m.limit, MaxWaiting: m.maxWaiting})
			callers := map[int]*caller{}
			var held []spillway.Permit
			nextID := 0
			defer func() {
				// Leave no goroutine behind, whatever failed.
				for _, c := range callers {
					c.cancel()
				}
				synctest.Wait()
				for _, c := range callers {
					if r := <-c.done; r.err == nil {
						r.permit.Release(nil)
					}
				}
				for _, p := range held {
					p.Release(nil)
				}
			}()

			// collect checks that exactly the callers in ids have been
			// admitted since the last step, and holds their permits.
			collect := func(ids []int) {
				synctest.Wait()
				for id, c := range callers {
					admitted := slices.Contains(ids, id)
					if pending(c.done) == admitted {
						rt.Fatalf("caller %d: admitted = %v, want %v", id, !pending(c.done), admitted)
					}
					if admitted {
						r := <-c.done
						if r.err != nil {
							rt.Fatalf("caller %d: %v, want a permit", id, r.err)
						}
						held = append(held, r.permit)
						delete(callers, id)
					}
				}
			}

			rt.Repeat(map[string]func(*rapid.T){
				"arrive": func(rt *rapid.T) {
					id := nextID
					nextID++
					ctx, cancel := context.WithCancel(t.Context())
					c := &caller{cancel: cancel, done: make(chan result, 1)}
					go func() {
						p, err := b.Acquire(ctx)
						c.done <- result{p, err}
					}()
					switch {
					case len(m.queue) == 0 && m.inFlight < m.limit:
						m.inFlight++
						callers[id] = c
						collect([]int{id})
					case len(m.queue) < m.maxWaiting:
						m.queue = append(m.queue, id)
						callers[id] = c
						collect(nil)
					default:
						m.rejected++
						if r := <-c.done; !isFull(r.err) {
							rt.Fatalf("arrival %d = %v, want bulkhead_full", id, r.err)
						}
						cancel()
					}
				},
				"release": func(rt *rapid.T) {
					if len(held) == 0 {
						rt.Skip("nothing held")
					}
					i := rapid.IntRange(0, len(held)-1).Draw(rt, "permit")
					p := held[i]
					held = slices.Delete(held, i, i+1)
					p.Release(nil)
					m.inFlight--
					collect(m.admit())
				},
				"cancel waiter": func(rt *rapid.T) {
					if len(m.queue) == 0 {
						rt.Skip("nobody waits")
					}
					i := rapid.IntRange(0, len(m.queue)-1).Draw(rt, "waiter")
					id := m.queue[i]
					m.queue = slices.Delete(m.queue, i, i+1)
					c := callers[id]
					c.cancel()
					if r := <-c.done; r.err != context.Canceled {
						rt.Fatalf("canceled waiter %d = %v, want context.Canceled", id, r.err)
					}
					delete(callers, id)
					collect(nil)
				},
				"try": func(rt *rapid.T) {
					p, ok := b.TryAcquire()
					want := len(m.queue) == 0 && m.inFlight < m.limit
					if ok != want {
						rt.Fatalf("TryAcquire = %v, want %v", ok, want)
					}
					if ok {
						m.inFlight++
						held = append(held, p)
					}
				},
				"resize": func(rt *rapid.T) {
					m.limit = rapid.IntRange(1, 4).Draw(rt, "newLimit")
					m.maxWaiting = rapid.IntRange(0, 4).Draw(rt, "newMaxWaiting")
					if err := b.Resize(m.limit, m.maxWaiting); err != nil {
						rt.Fatal(err)
					}
					collect(m.admit())
				},
				"": func(rt *rapid.T) {
					got := []int{b.InFlight(), b.Waiting(), int(b.Rejected()), b.Limit(), b.MaxWaiting()}
					want := []int{m.inFlight, len(m.queue), m.rejected, m.limit, m.maxWaiting}
					if !slices.Equal(got, want) {
						rt.Fatalf("InFlight, Waiting, Rejected, Limit, MaxWaiting = %v, want %v", got, want)
					}
				},
			})
		})
	})
}

// TestStress runs many goroutines against a small bulkhead with real
// concurrency, short MaxWaits and callers that give up, and checks that the
// limit holds at every moment and that every slot comes back. Run it with
// -race.
func TestStress(t *testing.T) {
	for _, resize := range []bool{false, true} {
		t.Run(fmt.Sprintf("resize=%v", resize), func(t *testing.T) {
			const limit, workers, calls = 4, 16, 400
			b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: limit, MaxWaiting: 6, MaxWait: time.Millisecond})
			var running, peak, admitted, full, canceled atomic.Int64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if resize {
				// Resizing between 1 and limit: the peak may reach the
				// largest limit, never more.
				wg.Go(func() {
					r := rand.New(rand.NewPCG(1, 2))
					for {
						select {
						case <-stop:
							_ = b.Resize(limit, 6)
							return
						default:
							_ = b.Resize(1+r.IntN(limit), r.IntN(7))
						}
					}
				})
			}
			var callersWG sync.WaitGroup
			for w := range workers {
				callersWG.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 7))
					for range calls {
						ctx, cancel := context.WithCancel(context.Background())
						if r.IntN(4) == 0 {
							// Give up at a random point, possibly while a
							// slot is being handed over.
							go cancel()
						}
						err := b.Execute(ctx, func(context.Context) error {
							n := running.Add(1)
							for {
								p := peak.Load()
								if n <= p || peak.CompareAndSwap(p, n) {
									break
								}
							}
							if !resize && n > limit {
								t.Errorf("%d calls running, limit %d", n, limit)
							}
							for range r.IntN(4) {
								runtime.Gosched()
							}
							running.Add(-1)
							return nil
						})
						cancel()
						switch {
						case err == nil:
							admitted.Add(1)
						case isFull(err):
							full.Add(1)
						case err == context.Canceled:
							canceled.Add(1)
						default:
							t.Errorf("Execute = %v", err)
						}
					}
				})
			}
			callersWG.Wait()
			close(stop)
			wg.Wait()
			if b.InFlight() != 0 || b.Waiting() != 0 {
				t.Fatalf("after the storm InFlight, Waiting = %d, %d; want 0, 0", b.InFlight(), b.Waiting())
			}
			if p := peak.Load(); p > limit {
				t.Fatalf("peak concurrency %d > %d", p, limit)
			}
			// Every slot came back: the whole limit can be taken again.
			for i := range limit {
				if _, ok := b.TryAcquire(); !ok {
					t.Fatalf("slot %d of %d lost", i+1, limit)
				}
			}
			if int(full.Load()) != int(b.Rejected()) {
				t.Errorf("%d bulkhead_full errors, Rejected = %d", full.Load(), b.Rejected())
			}
			t.Logf("peak %d; admitted %d, full %d, canceled %d", peak.Load(), admitted.Load(), full.Load(), canceled.Load())
		})
	}
}
