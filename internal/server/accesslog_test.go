package server

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

func TestBatchWriterFlushesEveryIntervalAndOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out spillwaytest.Buffer
		w := newBatchWriter(&out, 100*time.Millisecond)
		if _, err := w.Write([]byte("one\n")); err != nil {
			t.Fatal(err)
		}
		if out.String() != "" {
			t.Fatal("a line must wait for the batch")
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if out.String() != "one\n" {
			t.Fatalf("after one interval: %q", out.String())
		}
		w.Write([]byte("two\n"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != "one\ntwo\n" {
			t.Fatalf("Close must write out the rest: %q", out.String())
		}
	})
}
