package gateway

import (
	"bytes"
	"testing"
)

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
			f.feed(fr[i:i+1], false)
		}
		if !f.boundary() {
			t.Fatalf("frame of %d (masked %v): no boundary at its end", tc.n, tc.masked)
		}
	}
	f.feed(frame(10, false)[:3], false)
	if f.boundary() {
		t.Error("boundary inside a frame")
	}
	if got := closeFrame("idle timeout", false); got[0] != 0x88 || int(got[1]) != len(got)-2 || got[2] != 0x03 || got[3] != 0xe9 {
		t.Errorf("close frame % x", got)
	}
}

// TestCloseFrameMasked: the close frame the gateway sends an upstream is
// masked (RFC 6455 §5.3) and unmasks to 1001 and its reason.
func TestCloseFrameMasked(t *testing.T) {
	got := closeFrame("route changed", true)
	if got[0] != 0x88 || got[1] != 0x80|byte(2+len("route changed")) || len(got) != 6+2+len("route changed") {
		t.Fatalf("close frame % x", got)
	}
	payload := make([]byte, len(got)-6)
	for i := range payload {
		payload[i] = got[6+i] ^ got[2+i%4]
	}
	if want := append([]byte{0x03, 0xe9}, "route changed"...); !bytes.Equal(payload, want) {
		t.Errorf("payload % x, want % x", payload, want)
	}
	var f wsFrames
	if f.feed(got, false); !f.boundary() || !f.sawClose {
		t.Errorf("followed as a frame: boundary %v, close %v", f.boundary(), f.sawClose)
	}
}

// TestWSWriterCloseBetweenFrames: asked to close in the middle of a frame,
// the writer finishes that frame, then writes its close frame and drops
// what follows, but still sees the source's close frame in answer.
func TestWSWriterCloseBetweenFrames(t *testing.T) {
	var out bytes.Buffer
	w := newWSWriter(&out)
	data := []byte{0x82, 4, 'a', 'b', 'c', 'd'}
	if _, err := w.Write(data[:3]); err != nil {
		t.Fatal(err)
	}
	w.finish(closeFrame("x", false))
	if out.Len() != 3 {
		t.Fatalf("close frame written inside a frame: % x", out.Bytes())
	}
	answer := closeFrame("bye", false)
	_, _ = w.Write(append(append(data[3:], 0x82, 1, 'z'), answer...))
	want := append(append([]byte{}, data...), closeFrame("x", false)...)
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("wrote % x, want % x", out.Bytes(), want)
	}
	select {
	case <-w.answered:
	default:
		t.Error("the source's close frame not seen")
	}
	// A stream that carried its own close frame gets no other.
	out.Reset()
	w = newWSWriter(&out)
	_, _ = w.Write(answer)
	w.finish(closeFrame("x", false))
	if !bytes.Equal(out.Bytes(), answer) {
		t.Errorf("wrote % x after a close frame", out.Bytes()[len(answer):])
	}
}
