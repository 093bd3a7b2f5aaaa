package server

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// accessLogFlush is how long an access-log line may wait in the buffer.
const accessLogFlush = 100 * time.Millisecond

// batchWriter buffers the access log and writes it out in batches: when the
// buffer fills, and every interval. One write system call per request would
// cost the gateway a third of its throughput. A crash loses at most the
// lines of the last interval; Close writes out the rest.
type batchWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBatchWriter(w io.Writer, every time.Duration) *batchWriter {
	b := &batchWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(every)
	return b
}

// Write buffers p whole: slog hands over one line per call.
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *batchWriter) flushEvery(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush()
		case <-b.stop:
			return
		}
	}
}

func (b *batchWriter) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the periodic flush and writes out what is buffered.
func (b *batchWriter) Close() error {
	close(b.stop)
	<-b.done
	return b.flush()
}
