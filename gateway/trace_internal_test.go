package gateway

import (
	"testing"
	"unsafe"
)

// TestExchangeSizeClass holds the exchange, allocated once per request, to
// the 416-byte size class it had before the Tracer's field: tracing off
// must cost a request no more memory (see the exchange's field order).
func TestExchangeSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(exchange{}); n > 416 {
		t.Errorf("exchange is %d bytes, above its size class of 416: every request allocates more", n)
	}
}
