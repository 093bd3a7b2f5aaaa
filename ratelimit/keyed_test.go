package ratelimit

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// TestKeysAreIndependent: one key's flood does not touch another's bucket.
func TestKeysAreIndependent(t *testing.T) {
	clock := spillway.NewManualClock(0)
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 2, Burst: 3, Clock: clock}})
	for range 3 {
		if ok, _ := k.AllowKey("flood"); !ok {
			t.Fatal("burst refused")
		}
	}
	for range 100 {
		if ok, wait := k.AllowKey("flood"); ok || wait != 500*time.Millisecond {
			t.Fatalf("flood past its burst = %v, %v; want false, 500ms", ok, wait)
		}
	}
	for i := range 3 {
		if ok, _ := k.AllowKey("calm"); !ok {
			t.Fatalf("call %d of another key refused during the flood", i)
		}
	}
	if got := k.Rejected(); got != 100 {
		t.Errorf("Rejected = %d, want 100", got)
	}
}

// TestLongKeysAreHashed: keys past MaxKeyLen are told apart by their hash,
// and the same long key meets its own bucket.
func TestLongKeysAreHashed(t *testing.T) {
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Clock: spillway.NewManualClock(0)}})
	a, b := strings.Repeat("a", 1000), strings.Repeat("a", 999)+"b"
	if ok, _ := k.AllowKey(a); !ok {
		t.Fatal("first long key refused")
	}
	if ok, _ := k.AllowKey(b); !ok {
		t.Fatal("a second long key shares the first's bucket")
	}
	if ok, _ := k.AllowKey(a); ok {
		t.Fatal("the same long key got a new bucket")
	}
}

// TestMemoryIsBounded: a million distinct keys leave at most MaxKeys
// tracked, and each key still gets its own bucket when it comes.
func TestMemoryIsBounded(t *testing.T) {
	const maxKeys = 10_000
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Per: time.Hour, Clock: spillway.NewManualClock(0)}, MaxKeys: maxKeys})
	b := make([]byte, 0, 16)
	for i := range 1_000_000 {
		if ok, _ := k.AllowKey(string(strconv.AppendInt(b[:0], int64(i), 10))); !ok {
			t.Fatalf("key %d, new, refused", i)
		}
	}
	if n := k.Len(); n > maxKeys || n < maxKeys/2 {
		t.Fatalf("Len = %d after a million keys, want at most MaxKeys %d (and not far below)", n, maxKeys)
	}
}

// TestEvictionSparesKeysWithState: at the bound, a new key evicts a key
// whose bucket is full again, never one that still owes tokens while a
// full one is there.
func TestEvictionSparesKeysWithState(t *testing.T) {
	clock := spillway.NewManualClock(0)
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Clock: clock}, MaxKeys: 100}) // one shard
	for i := range 99 {
		k.AllowKey("idle" + strconv.Itoa(i))
	}
	clock.Advance(time.Minute) // the idle keys' buckets are full again
	k.AllowKey("hot")
	if ok, _ := k.AllowKey("new"); !ok {
		t.Fatal("a new key at the bound refused")
	}
	if ok, _ := k.AllowKey("hot"); ok {
		t.Fatal("the hot key was evicted (it got a fresh bucket) while full ones were there")
	}
	if n := k.Len(); n > 100 {
		t.Fatalf("Len = %d, want at most 100", n)
	}
	// When every key owes tokens, a new key still gets in, evicting one.
	full := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Clock: clock}, MaxKeys: 10})
	for i := range 20 {
		if ok, _ := full.AllowKey("k" + strconv.Itoa(i)); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if n := full.Len(); n != 10 {
		t.Fatalf("Len = %d, want 10: each new key evicts one", n)
	}
}

// TestKeyedUpdateKeepsState: Update changes every key's limit and keeps
// each key's state; it refuses a MaxWait.
func TestKeyedUpdateKeepsState(t *testing.T) {
	clock := spillway.NewManualClock(0)
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Clock: clock}, MaxKeys: 50})
	k.AllowKey("a")
	if err := k.Update(func(c *Config) { c.Limit = 10 }); err != nil {
		t.Fatal(err)
	}
	if ok, wait := k.AllowKey("a"); ok || wait != 100*time.Millisecond {
		t.Fatalf("AllowKey after Update = %v, %v; want false, 100ms (no token kept, the new interval)", ok, wait)
	}
	if ok, _ := k.AllowKey("b"); !ok {
		t.Fatal("a new key refused after Update")
	}
	if c := k.Config(); c.Limit != 10 || c.MaxKeys != 50 {
		t.Fatalf("Config = %+v, want Limit 10, MaxKeys 50", c)
	}
	if err := k.Update(func(c *Config) { c.MaxWait = time.Second }); err == nil {
		t.Fatal("Update(MaxWait) accepted")
	}
}

// TestConcurrentKeys: many goroutines on shared and own keys (run with
// -race), and the total admitted per key stays within its burst.
func TestConcurrentKeys(t *testing.T) {
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Per: time.Hour, Burst: 10, Clock: spillway.NewManualClock(0)}, MaxKeys: 1000})
	admitted := make(chan int, 8)
	for g := range 8 {
		go func() {
			n := 0
			for i := range 200 {
				if ok, _ := k.AllowKey("shared"); ok {
					n++
				}
				k.AllowKey("own" + strconv.Itoa(g*1000+i))
			}
			admitted <- n
		}()
	}
	total := 0
	for range 8 {
		total += <-admitted
	}
	if total != 10 {
		t.Fatalf("shared key admitted %d calls, want its burst of 10", total)
	}
}

// TestKeyedAttachedObserverOutlivesUpdate: an attached observer gets the
// refusals besides Config.Observer, and keeps getting them
// after an Update that drops Config.Observer.
func TestKeyedAttachedObserverOutlivesUpdate(t *testing.T) {
	var own, attached int
	ownObs := spillway.ObserverFunc(func(spillway.Event) { own++ })
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1, Clock: spillway.NewManualClock(0), Observer: ownObs}})
	k.AttachObserver(spillway.ObserverFunc(func(spillway.Event) { attached++ }))
	k.AllowKey("a")
	k.AllowKey("a") // refused
	if err := k.Update(func(c *Config) { c.Observer = nil }); err != nil {
		t.Fatal(err)
	}
	k.AllowKey("a") // refused
	if own != 1 || attached != 2 {
		t.Errorf("Config.Observer saw %d refusals, the attached one %d; want 1, 2", own, attached)
	}
}
