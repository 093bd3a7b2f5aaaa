package spillwayhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// pipeBase answers every request at once with a body the test writes
// through w.
func pipeBase(w **io.PipeWriter) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		pr, pw := io.Pipe()
		*w = pw
		context.AfterFunc(r.Context(), func() { pw.CloseWithError(context.Cause(r.Context())) })
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: pr, ContentLength: -1, Request: r}, nil
	})
}

// bodyTimerTransport is a Transport over pipeBase with the limits to.
func bodyTimerTransport(t *testing.T, to spillwayhttp.Timeouts, w **io.PipeWriter) *http.Client {
	ds := &spillwayhttp.Downstream{Timeouts: to}
	return &http.Client{Transport: transport(t, spillwayhttp.Config{Base: pipeBase(w)}, ds)}
}

// readFor reads one byte of body and reports the error and how long the
// Read waited.
func readFor(body io.Reader) (time.Duration, error) {
	start := time.Now()
	_, err := body.Read(make([]byte, 1))
	return time.Since(start), err
}

// TestBodyIdleCutsAReadAtTheIdleLimitWhateverTheHeadLimit: a Read that
// gets nothing ends at the body idle limit from its start, whether the
// attempt's limit (the timer's first setting) is longer or shorter.
func TestBodyIdleCutsAReadAtTheIdleLimitWhateverTheHeadLimit(t *testing.T) {
	for _, attempt := range []time.Duration{10 * time.Second, 300 * time.Millisecond, 1 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			var w *io.PipeWriter
			c := bodyTimerTransport(t, spillwayhttp.Timeouts{Attempt: attempt, Total: time.Minute, BodyIdle: time.Second}, &w)
			resp, err := c.Get("http://body.test/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			time.Sleep(500 * time.Millisecond) // the caller pauses: not timed
			waited, err := readFor(resp.Body)
			if waited != time.Second || spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
				t.Errorf("attempt limit %v: the stalled Read ended after %v with %v, want deadline_exceeded after 1s", attempt, waited, err)
			}
		})
	}
}

// TestBodyIdleCountsOnlyTheWaitInRead: a body whose bytes come a little
// faster than the idle limit, read by a caller that pauses longer than it
// between reads, is read whole, for much longer than every limit.
func TestBodyIdleCountsOnlyTheWaitInRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w *io.PipeWriter
		c := bodyTimerTransport(t, spillwayhttp.Timeouts{Attempt: 200 * time.Millisecond, Total: 300 * time.Millisecond, BodyIdle: time.Second}, &w)
		resp, err := c.Get("http://body.test/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		go func() {
			for range 5 {
				time.Sleep(900 * time.Millisecond)
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
			}
			time.Sleep(900 * time.Millisecond)
			w.Close()
		}()
		start := time.Now()
		for i := range 5 {
			if _, err := readFor(resp.Body); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		// The bytes the writer sends while the caller pauses wait in the
		// pipe; the pause is not the Read's.
		time.Sleep(3 * time.Second)
		if _, err := readFor(resp.Body); !errors.Is(err, io.EOF) {
			t.Fatalf("the end: %v, want EOF", err)
		}
		if el := time.Since(start); el < 5*time.Second {
			t.Errorf("the body took %v, want the 5 s it was written in and more", el)
		}
	})
}
