package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// TestWriteTimeoutMovesWithProgress: in a bubble's fake time, a write much
// longer than the timeout goes through while its reader keeps reading,
// however slowly, and fails a timeout (and a sixteenth at most) after the
// reader stops.
func TestWriteTimeoutMovesWithProgress(t *testing.T) {
	const timeout = 100 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		server, client := net.Pipe()
		defer client.Close()
		c := &writeTimeoutConn{Conn: server, timeout: timeout}
		defer c.Close()

		const size, chunk = 1 << 20, 16 << 10
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Write(make([]byte, size))
			done <- err
		}()
		// Each chunk comes after 90 ms: the whole body takes 64 × 90 ms,
		// far longer than the timeout, and every wait is shorter than it.
		buf := make([]byte, chunk)
		for n := 0; n < size; {
			time.Sleep(90 * time.Millisecond)
			m, err := io.ReadFull(client, buf)
			n += m
			if err != nil {
				t.Fatalf("after %d bytes: %v", n, err)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("a steady reader's write failed: %v", err)
		}
		if took := time.Since(start); took < 50*timeout {
			t.Fatalf("the write took %v, meant to be far longer than the timeout", took)
		}

		// The reader stops: the next write fails with the deadline, at most
		// a sixteenth of the timeout late (the deadline last set stands).
		start = time.Now()
		go func() {
			_, err := c.Write(make([]byte, chunk))
			done <- err
		}()
		if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a stalled write: %v, want the deadline", err)
		}
		if took := time.Since(start); took < timeout-timeout/16 || took > timeout+timeout/16 {
			t.Errorf("the stalled write failed after %v, want %v ± %v", took, timeout, timeout/16)
		}

		// The reader takes a few bytes and stops: the progress gives the
		// write a new window, so it fails within two.
		start = time.Now()
		go func() {
			_, err := c.Write(make([]byte, chunk))
			done <- err
		}()
		if _, err := io.ReadFull(client, buf[:chunk/2]); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a stalled write: %v, want the deadline", err)
		}
		if took := time.Since(start); took < timeout || took > 2*(timeout+timeout/16) {
			t.Errorf("the write stalled after some progress failed after %v, want %v to %v", took, timeout, 2*(timeout+timeout/16))
		}
	})
}
