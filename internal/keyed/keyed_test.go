package keyed

import (
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMakeOncePerKeyAndRetryAfterAnError(t *testing.T) {
	var c Map[int]
	if _, ok := c.Load("a"); ok {
		t.Fatal("an empty map has a value")
	}
	fail := errors.New("down")
	if _, err := c.Make("a", func(string) (int, error) { return 0, fail }); !errors.Is(err, fail) {
		t.Fatalf("err %v, want %v", err, fail)
	}
	if _, ok := c.Load("a"); ok {
		t.Fatal("a failed make left a value")
	}
	var mu sync.Mutex
	made := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := c.Make("a", func(string) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				made++
				return 7, nil
			})
			if err != nil || v != 7 {
				t.Errorf("got %d, %v", v, err)
			}
		})
	}
	wg.Wait()
	if made != 1 {
		t.Fatalf("made %d times, want once", made)
	}
	if v, ok := c.Load("a"); !ok || v != 7 {
		t.Fatalf("Load = %d, %v", v, ok)
	}
	all := c.All()
	all["b"] = 1
	if _, ok := c.Load("b"); ok {
		t.Fatal("All's map is shared with the Map")
	}
}

func BenchmarkLoad(b *testing.B) {
	var c Map[*int]
	_, _ = c.Make("host:443", func(string) (*int, error) { return new(int), nil })
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Load("host:443"); !ok {
			b.Fatal("missing")
		}
	}
}
