package bulkhead_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/bulkhead"
)

func FuzzConfig(f *testing.F) {
	f.Add("", 0, 0, int64(0))
	f.Add("db", 10, 5, int64(time.Second))
	f.Add("x", -1, 0, int64(0))
	f.Add("x", 1, -1, int64(0))
	f.Add("x", 1, 1, int64(-1))
	f.Add("big", 1<<40, 1<<40, int64(1<<62))
	f.Fuzz(func(t *testing.T, name string, maxConcurrent, maxWaiting int, maxWait int64) {
		cfg := bulkhead.Config{Name: name, MaxConcurrent: maxConcurrent, MaxWaiting: maxWaiting, MaxWait: time.Duration(maxWait)}
		b, err := bulkhead.New(cfg)
		var wantField string
		switch {
		case maxConcurrent < 0:
			wantField = "MaxConcurrent"
		case maxWaiting < 0:
			wantField = "MaxWaiting"
		case maxWait < 0:
			wantField = "MaxWait"
		}
		if wantField != "" {
			if err == nil || !strings.HasPrefix(err.Error(), "bulkhead: "+wantField+" ") {
				t.Fatalf("New(%+v) = %v, want an error naming %s", cfg, err, wantField)
			}
			return
		}
		if err != nil {
			t.Fatalf("New(%+v): %v", cfg, err)
		}
		wantLimit := maxConcurrent
		if wantLimit == 0 {
			wantLimit = bulkhead.DefaultMaxConcurrent
		}
		if b.Limit() != wantLimit || b.MaxWaiting() != maxWaiting || b.InFlight() != 0 || b.Waiting() != 0 {
			t.Fatalf("New(%+v): Limit %d, MaxWaiting %d, InFlight %d, Waiting %d", cfg, b.Limit(), b.MaxWaiting(), b.InFlight(), b.Waiting())
		}
		p, ok := b.TryAcquire()
		if !ok {
			t.Fatal("a new bulkhead refused its first call")
		}
		p.Release(nil)
		if b.InFlight() != 0 {
			t.Fatalf("InFlight = %d after release", b.InFlight())
		}
	})
}
