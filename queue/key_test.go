package queue

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestKeyBounded: a key over MaxKeyLen bytes or with a byte that is not
// visible ASCII is refused with ErrInvalidKey, and nothing is stored (the
// store would keep it in memory for the dedupe window).
func TestKeyBounded(t *testing.T) {
	q := openEmbedded(t, nil)
	for _, key := range []string{
		strings.Repeat("k", 30<<10),
		strings.Repeat("k", MaxKeyLen+1),
		"with space", "tab\there", "nul\x00", "caf\u00e9", "new\nline",
	} {
		id, dup, err := q.Enqueue(t.Context(), "orders", Message{Key: key, Data: []byte("x")})
		if !errors.Is(err, ErrInvalidKey) || ReasonOf(err) != ReasonKeyInvalid || id != "" || dup {
			t.Errorf("key %.20q (%d bytes): %q %v %v, want ErrInvalidKey", key, len(key), id, dup, err)
		}
	}
	if st, err := q.Stats(t.Context(), "orders"); err != nil || st.Pending != 0 {
		t.Fatalf("stats = %+v %v: an invalid key stored something", st, err)
	}
	for _, key := range []string{strings.Repeat("k", MaxKeyLen), "!", "~{}|\"'"} {
		if _, _, err := q.Enqueue(t.Context(), "orders", Message{Key: key, Data: []byte("x")}); err != nil {
			t.Errorf("key %.20q (%d bytes): %v", key, len(key), err)
		}
	}
}

// TestMsgIDFixedSize: what the store remembers for the dedupe window, the
// Nats-Msg-Id, has the length of a job id whatever the key, and is not the
// key.
func TestMsgIDFixedSize(t *testing.T) {
	q := openEmbedded(t, nil)
	for _, key := range []string{"k", strings.Repeat("x", MaxKeyLen)} {
		id, _, err := q.Enqueue(t.Context(), "orders", Message{Key: key, Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		m, err := q.q.lastBySubject(t.Context(), q.q.work, q.q.workSubject("orders", id))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); len(got) != 32 || strings.Contains(got, key) {
			t.Errorf("key of %d bytes: Nats-Msg-Id %q (%d bytes), want 32 bytes not holding the key", len(key), got, len(got))
		}
	}
}

// TestDedupeMemoryPerKey measures what a deduplicated job costs the
// embedded server's memory for the dedupe window. Two fresh stores get the
// same number of jobs, unkeyed in one, keyed in the other (keys of
// MaxKeyLen bytes); each work stream is then purged, so that only the
// dedupe entries stay, and the live heaps are compared. The figure is the
// one docs/async.md gives.
func TestDedupeMemoryPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap over 2 × 20,000 jobs")
	}
	const n = 20000
	prefix := strings.Repeat("k", MaxKeyLen-6)
	heapWith := func(keyed bool) uint64 {
		q, err := Open(t.Context(), Config{Dir: t.TempDir(), Prefix: "MEM"})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		for i := range n {
			m := Message{Data: []byte("x")}
			if keyed {
				m.Key = fmt.Sprintf("%s%06d", prefix, i)
			}
			if _, _, err := q.Enqueue(t.Context(), "orders", m); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.q.work.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	heapWith(false) // warm up
	base := heapWith(false)
	keyed := heapWith(true)
	per := (int64(keyed) - int64(base)) / n
	t.Logf("live heap with a store after %d jobs: %d B unkeyed, %d B keyed (keys of %d bytes): %d B per deduplicated job",
		n, base, keyed, MaxKeyLen, per)
	if per > 1024 {
		t.Fatalf("%d B per deduplicated job, want at most 1 KiB whatever the key", per)
	}
}

// TestKeyScope: the same key under two scopes is two jobs; under one scope,
// one.
func TestKeyScope(t *testing.T) {
	q := openEmbedded(t, nil)
	enqueue := func(scope, data string) (string, bool) {
		t.Helper()
		id, dup, err := q.Enqueue(t.Context(), "orders", Message{Key: "order-1", Scope: scope, Data: []byte(data)})
		if err != nil {
			t.Fatalf("scope %q: %v", scope, err)
		}
		return id, dup
	}
	alice, dup := enqueue("alice", "alice's order")
	if dup {
		t.Fatal("alice's first order is a duplicate")
	}
	bob, dup := enqueue("bob", "bob's order")
	if dup || bob == alice {
		t.Fatalf("bob's order with alice's key: id %s (alice %s), duplicate %v: want a job of his own", bob, alice, dup)
	}
	unscoped, dup := enqueue("", "someone's order")
	if dup || unscoped == alice || unscoped == bob {
		t.Fatalf("unscoped: id %s duplicate %v", unscoped, dup)
	}
	again, dup := enqueue("alice", "alice's order")
	if !dup || again != alice {
		t.Fatalf("alice again: %s %v, want %s duplicate", again, dup, alice)
	}
	if st, err := q.Stats(t.Context(), "orders"); err != nil || st.Pending != 3 {
		t.Fatalf("stats = %+v %v, want 3 jobs", st, err)
	}
}

// TestKeyReusedForAnotherMessage: a duplicate key with another payload (or
// header) is refused with ErrKeyReused and no id, while the job waits,
// after it was delivered, and after it died; the same message again is
// still a duplicate with the stored job's id.
func TestKeyReusedForAnotherMessage(t *testing.T) {
	q := openEmbedded(t, nil)
	rec := newRecorder(func(j *Job) Result {
		if string(j.Data) == "poison" {
			return Result{Outcome: Rejected, Status: 422}
		}
		return Result{Outcome: Delivered, Status: 200}
	})
	check := func(stage, key, data string, want string) {
		t.Helper()
		same := Message{Key: key, Data: []byte(data), Header: map[string][]string{"A": {"1"}}}
		id, dup, err := q.Enqueue(t.Context(), "orders", same)
		if err != nil || !dup || id != want {
			t.Errorf("%s, same message: %q %v %v, want %s duplicate", stage, id, dup, err, want)
		}
		for _, other := range []Message{
			{Key: key, Data: []byte(data + "!"), Header: same.Header},
			{Key: key, Data: []byte(data), Header: map[string][]string{"A": {"2"}}},
			{Key: key, Data: []byte(data), Fingerprint: []byte("another request")},
		} {
			id, dup, err := q.Enqueue(t.Context(), "orders", other)
			if !errors.Is(err, ErrKeyReused) || ReasonOf(err) != ReasonKeyReused || id != "" || dup {
				t.Errorf("%s, another message: %q %v %v, want ErrKeyReused and no id", stage, id, dup, err)
			}
		}
	}
	hdr := map[string][]string{"A": {"1"}}
	ok, _, err := q.Enqueue(t.Context(), "orders", Message{Key: "k-ok", Data: []byte("fine"), Header: hdr})
	if err != nil {
		t.Fatal(err)
	}
	bad, _, err := q.Enqueue(t.Context(), "orders", Message{Key: "k-bad", Data: []byte("poison"), Header: hdr})
	if err != nil {
		t.Fatal(err)
	}
	check("queued", "k-ok", "fine", ok)
	w, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	waitState(t, q, ok, StateDelivered)
	waitState(t, q, bad, StateDead)
	check("delivered", "k-ok", "fine", ok)
	check("dead", "k-bad", "poison", bad)
	// The dead letter alone (its status record gone) still compares.
	if err := q.q.kv.Purge(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	check("dead, without a status record", "k-bad", "poison", bad)
	rec.mu.Lock()
	n := len(rec.seen)
	rec.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d deliveries, want 2: a refused message was stored", n)
	}
}
