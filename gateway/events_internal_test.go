package gateway

import (
	"testing"
	"time"
)

// Rejections of one upstream and reason make at most one event a second,
// which counts those folded into it.
func TestRejectionSampleFoldsABurstIntoOneEventASecond(t *testing.T) {
	var s rejectionSample
	sec := int64(time.Second)
	steps := []struct {
		now   int64
		count uint64
		due   bool
	}{
		{now: 5 * sec, count: 1, due: true},
		{now: 5*sec + 1},
		{now: 5*sec + sec/2},
		{now: 6*sec - 1},
		{now: 6 * sec, count: 4, due: true},
		{now: 9 * sec, count: 1, due: true},
	}
	for i, st := range steps {
		if n, due := s.take(st.now); n != st.count || due != st.due {
			t.Fatalf("step %d: take = %d, %v; want %d, %v", i, n, due, st.count, st.due)
		}
	}
}

func BenchmarkRejectionSample(b *testing.B) {
	var s rejectionSample
	b.ReportAllocs()
	for b.Loop() {
		s.take(time.Now().UnixNano())
	}
}
