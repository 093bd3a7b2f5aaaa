package sharedlimit

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway/internal/natstest"
)

// BenchmarkAllowKey is a request of a key whose tokens are leased: the
// path every request but one per lease takes. The bucket is large enough
// that the run never waits for a refill; the leases it takes are in the
// time.
func BenchmarkAllowKey(b *testing.B) {
	s := natstest.Start(b, natsOptsTB(b))
	q := openQueueTB(b, s.ClientURL())
	fb := &fallbacks{rate: 1e9, burst: 1e9, now: time.Now}
	l, err := New(Config{Open: bucketOf(q, time.Minute), Route: "bench", Rate: 1e9, Burst: 1e9, Fallback: fb.build})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	l.AllowKey("client")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _ := l.AllowKey("client"); !ok {
				b.Error("refused")
				return
			}
		}
	})
}
