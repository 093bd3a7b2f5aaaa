package gateway

import "testing"

// TestWSFramesBoundaries: fed byte by byte, wsFrames stands at a boundary
// exactly after each whole frame — 7-bit, 16-bit and 64-bit lengths,
// masked or not.
func TestWSFramesBoundaries(t *testing.T) {
	frame := func(n int, masked bool) []byte {
		b := []byte{0x82}
		m := byte(0)
		if masked {
			m = 0x80
		}
		switch {
		case n < 126:
			b = append(b, m|byte(n))
		case n < 1<<16:
			b = append(b, m|126, byte(n>>8), byte(n))
		default:
			b = append(b, m|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		if masked {
			b = append(b, 1, 2, 3, 4)
		}
		return append(b, make([]byte, n)...)
	}
	var f wsFrames
	for _, tc := range []struct {
		n      int
		masked bool
	}{{0, false}, {5, true}, {125, false}, {126, true}, {300, false}, {70000, true}, {1 << 16, false}} {
		fr := frame(tc.n, tc.masked)
		for i := range fr {
			if f.boundary() != (i == 0) {
				t.Fatalf("frame of %d (masked %v): boundary %v after %d of %d bytes", tc.n, tc.masked, f.boundary(), i, len(fr))
			}
			f.feed(fr[i : i+1])
		}
		if !f.boundary() {
			t.Fatalf("frame of %d (masked %v): no boundary at its end", tc.n, tc.masked)
		}
	}
	f.feed(frame(10, false)[:3])
	if f.boundary() {
		t.Error("boundary inside a frame")
	}
	if got := closeFrame("idle timeout"); got[0] != 0x88 || int(got[1]) != len(got)-2 || got[2] != 0x03 || got[3] != 0xe9 {
		t.Errorf("close frame % x", got)
	}
}
