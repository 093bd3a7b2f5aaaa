package gateway

import (
	"errors"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// readAfter reads one byte from c and reports how long the Read took and
// its error.
func readAfter(c net.Conn) (time.Duration, error) {
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	return time.Since(start), err
}

// TestReadDeadlineConnKeepsItsUsersDeadline: whatever deadline the socket
// still has from before, a Read fails exactly at the last deadline its user
// set, and never when the user cleared it; an earlier deadline applies at
// once, and one in the past ends a blocked Read (net/http's abort of its
// background read).
func TestReadDeadlineConnKeepsItsUsersDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server, client := net.Pipe()
		defer client.Close()
		c := &readDeadlineConn{Conn: server}
		defer c.Close()

		// Moved later: the socket keeps its earlier deadline, the Read
		// goes on past it to the one wanted.
		c.SetReadDeadline(time.Now().Add(time.Second))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if took, err := readAfter(c); !errors.Is(err, os.ErrDeadlineExceeded) || took != 5*time.Second {
			t.Errorf("deadline moved to 5s: the Read ended after %v with %v, want the deadline at 5s", took, err)
		}

		// Cleared: no deadline, though the socket's last one passes.
		c.SetReadDeadline(time.Now().Add(time.Second))
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(3 * time.Second)
			client.Write([]byte("x"))
		}()
		if took, err := readAfter(c); err != nil || took != 3*time.Second {
			t.Errorf("deadline cleared: the Read ended after %v with %v, want the byte at 3s", took, err)
		}

		// Moved earlier: it applies.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if took, err := readAfter(c); !errors.Is(err, os.ErrDeadlineExceeded) || took != time.Second {
			t.Errorf("deadline moved to 1s: the Read ended after %v with %v, want the deadline at 1s", took, err)
		}

		// A deadline in the past ends a Read blocked under none.
		c.SetReadDeadline(time.Time{})
		done := make(chan error, 1)
		go func() {
			_, err := readAfter(c)
			done <- err
		}()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		c.SetReadDeadline(time.Unix(1, 0))
		if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a deadline in the past: the blocked Read ended with %v, want the deadline", err)
		}

		// Cleared after that, the next Read waits for its byte.
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(time.Second)
			client.Write([]byte("y"))
		}()
		if took, err := readAfter(c); err != nil || took != time.Second {
			t.Errorf("after the abort: the Read ended after %v with %v, want the byte at 1s", took, err)
		}
	})
}
