package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Policy, as its doc comments state them.
const (
	defaultMaxAttempts = 20
	defaultInitial     = time.Second
	defaultMaxBackoff  = 5 * time.Minute
	defaultMultiplier  = 2
	defaultRetention   = 72 * time.Hour
	defaultConcurrency = 8
	defaultAckWait     = 30 * time.Second
	defaultPause       = time.Second
	// fetchWait bounds one pull request, so that the fetch loop looks at
	// the gate again at least this often.
	fetchWait = 2 * time.Second
)

func (p *Policy) setDefaults() {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = defaultMaxAttempts
	}
	if p.Backoff.Initial <= 0 {
		p.Backoff.Initial = defaultInitial
	}
	if p.Backoff.Max <= 0 {
		p.Backoff.Max = defaultMaxBackoff
	}
	if p.Backoff.Multiplier < 1 {
		p.Backoff.Multiplier = defaultMultiplier
	}
	if p.Backoff.Jitter == "" {
		p.Backoff.Jitter = "full"
	}
	if p.Retention <= 0 {
		p.Retention = defaultRetention
	}
	if p.Concurrency <= 0 {
		p.Concurrency = defaultConcurrency
	}
	if p.Ordered {
		p.Concurrency = 1
	}
	if p.AckWait <= 0 {
		p.AckWait = defaultAckWait
	}
}

// delay is the wait before retry n (n >= 1).
func (b Backoff) delay(n int) time.Duration {
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(n-1))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	switch b.Jitter {
	case "none":
	case "equal":
		d = d/2 + rand.Float64()*d/2
	default:
		d = rand.Float64() * d
	}
	return time.Duration(d)
}

// workerImpl is the state behind a *Worker.
type workerImpl struct {
	q    *queueImpl
	name string
	p    Policy
	h    Handler
	o    WorkerOptions
	cons jetstream.Consumer

	// fetchCtx ends when Stop begins: no more fetching, no more waiting
	// in place. handlerCtx ends when Stop gives up waiting for handlers.
	fetchCtx      context.Context
	stopFetch     context.CancelFunc
	handlerCtx    context.Context
	cancelHandler context.CancelFunc

	jobs     chan jetstream.Msg
	slots    chan struct{}
	handlers sync.WaitGroup
	loops    sync.WaitGroup

	mu       sync.Mutex
	inFlight map[jetstream.Msg]context.CancelFunc

	stopOnce sync.Once
}

func (q *queueImpl) consume(name string, p Policy, h Handler, o WorkerOptions) (*Worker, error) {
	if !validName(name) {
		return nil, fmt.Errorf("queue: invalid queue name %q: use letters, digits, '-' and '_'", name)
	}
	if h == nil {
		return nil, errors.New("queue: nil handler")
	}
	p.setDefaults()
	if q.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*q.cfg.Timeout)
	defer cancel()
	var cons jetstream.Consumer
	err := retrySetup(ctx, q.cfg.Timeout, func(ctx context.Context) (err error) {
		cons, err = q.work.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       name,
			Description:   "Spillway workers of queue " + name,
			FilterSubject: q.workSubject(name, ">"),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       p.AckWait,
			// The worker counts attempts itself: a paused delivery is
			// not an attempt.
			MaxDeliver:    -1,
			MaxAckPending: p.Concurrency,
			Replicas:      q.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: consumer %s: %w: %w", name, ErrUnavailable, err)
	}
	w := &workerImpl{q: q, name: name, p: p, h: h, o: o, cons: cons,
		jobs:     make(chan jetstream.Msg),
		slots:    make(chan struct{}, p.Concurrency),
		inFlight: map[jetstream.Msg]context.CancelFunc{},
	}
	w.fetchCtx, w.stopFetch = context.WithCancel(context.Background())
	w.handlerCtx, w.cancelHandler = context.WithCancel(context.Background())
	wk := &Worker{w: w}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	q.workers[wk] = struct{}{}
	q.mu.Unlock()

	w.loops.Add(2)
	go w.fetchLoop()
	go w.heartbeat()
	w.handlers.Add(p.Concurrency)
	for range p.Concurrency {
		go w.handle()
	}
	return wk, nil
}

// fetchLoop pulls as many jobs as there are idle handlers, after asking
// the gate, until Stop.
func (w *workerImpl) fetchLoop() {
	defer w.loops.Done()
	defer close(w.jobs)
	for {
		if w.o.Gate != nil {
			if d := w.o.Gate(); d > 0 {
				if !w.sleep(w.fetchCtx, d) {
					return
				}
				continue
			}
		}
		select {
		case w.slots <- struct{}{}:
		case <-w.fetchCtx.Done():
			return
		}
		n := 1
	more:
		for n < w.p.Concurrency {
			select {
			case w.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		got := w.fetch(n)
		for ; got < n; got++ {
			<-w.slots
		}
		if w.fetchCtx.Err() != nil {
			return
		}
	}
}

// fetch pulls up to n jobs and hands them to the handlers; it returns how
// many it handed over.
func (w *workerImpl) fetch(n int) int {
	ctx, cancel := context.WithTimeout(w.fetchCtx, fetchWait)
	defer cancel()
	batch, err := w.cons.Fetch(n, jetstream.FetchContext(ctx))
	if err != nil {
		if w.fetchCtx.Err() == nil {
			w.q.log.Debug("queue: fetch failed", "queue", w.name, "error", err)
			w.sleep(w.fetchCtx, 100*time.Millisecond)
		}
		return 0
	}
	got := 0
	for m := range batch.Messages() {
		w.jobs <- m
		got++
	}
	if err := batch.Error(); err != nil && w.fetchCtx.Err() == nil &&
		!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
		w.q.log.Debug("queue: fetch failed", "queue", w.name, "error", err)
		w.sleep(w.fetchCtx, 100*time.Millisecond)
	}
	return got
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func (w *workerImpl) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// heartbeat tells the store every AckWait/3 that the jobs in flight are
// still being worked on, so that a long delivery is not redelivered.
func (w *workerImpl) heartbeat() {
	defer w.loops.Done()
	t := time.NewTicker(w.p.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-w.handlerCtx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		for m, cancel := range w.inFlight {
			if err := m.InProgress(); err != nil {
				cancel()
			}
		}
		w.mu.Unlock()
	}
}

func (w *workerImpl) handle() {
	defer w.handlers.Done()
	for m := range w.jobs {
		w.process(m)
		<-w.slots
	}
}

// process runs one stored message through the handler until it is
// acknowledged, sent back for a later retry, or dead-lettered.
func (w *workerImpl) process(m jetstream.Msg) {
	ctx, cancel := context.WithCancel(w.handlerCtx)
	defer cancel()
	w.mu.Lock()
	w.inFlight[m] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.inFlight, m)
		w.mu.Unlock()
	}()

	subject := m.Subject()
	id := subject[strings.LastIndexByte(subject, '.')+1:]
	h := m.Headers()
	j := &Job{ID: id, Queue: w.name, Key: h.Get(hdrKey), Header: userHeader(h), Data: m.Data(),
		Enqueued: headerTime(h, hdrEnqueued), digest: h.Get(hdrDigest)}
	var rec record
	if meta, err := m.Metadata(); err == nil && meta.NumDelivered > 1 {
		// A redelivery: the status record knows how many attempts were
		// made (paused deliveries are not attempts).
		r, found, err := w.q.getRecord(ctx, id)
		if err != nil {
			_ = m.NakWithDelay(defaultPause)
			return
		}
		if found {
			if r.State == StateDelivered || r.State == StateDead {
				// Its ack was lost after it was done.
				_ = m.Ack()
				return
			}
			rec = r
		}
	}
	rec.Queue, rec.Enqueued, rec.Digest = w.name, j.Enqueued, j.digest
	if rec.Attempts >= w.p.MaxAttempts {
		// The last attempt was cut short (a crash): nothing is left.
		w.bury(ctx, m, j, rec, Result{Outcome: Failed, Status: rec.LastStatus, Reason: rec.LastReason})
		return
	}
	for {
		j.Attempt = rec.Attempts + 1
		now := time.Now().UTC()
		rec.State, rec.Attempts, rec.Updated, rec.NextAttempt = StateInFlight, j.Attempt, now, time.Time{}
		w.q.sendRecord(id, rec, w.p.Retention)
		res := w.h(ctx, j)
		if ctx.Err() != nil && res.Outcome != Delivered {
			// Stopped (or the ack wait could not be extended): leave it
			// for another delivery; this attempt counts.
			_ = m.Nak()
			return
		}
		rec.LastStatus, rec.LastReason, rec.Updated = res.Status, res.Reason, time.Now().UTC()
		switch res.Outcome {
		case Delivered:
			// Stored before the ack: a redelivery after a lost ack finds
			// it and is not handed to the handler again.
			rec.State = StateDelivered
			if !w.putRecord(id, rec) {
				// The ack frees the job's space in the store: try again
				// after it, so the status does not stay behind.
				_ = m.Ack()
				w.putRecord(id, rec)
			} else {
				_ = m.Ack()
			}
			w.report(res, false)
			return
		case Paused:
			d := res.RetryAfter
			if d <= 0 {
				d = defaultPause
			}
			rec.Attempts--
			rec.State, rec.NextAttempt = StateQueued, rec.Updated.Add(d)
			// Acknowledged before the nak: the redelivery must read the
			// uncounted attempts, not the in_flight record.
			w.putRecord(id, rec)
			w.report(res, false)
			if !w.holdFor(m, d) {
				return
			}
		case Failed:
			if rec.Attempts >= w.p.MaxAttempts {
				w.bury(ctx, m, j, rec, res)
				return
			}
			d := w.p.Backoff.delay(rec.Attempts)
			if ra := min(res.RetryAfter, w.p.Backoff.Max); ra > d {
				d = ra
			}
			rec.State, rec.NextAttempt = StateRetrying, rec.Updated.Add(d)
			w.putRecord(id, rec)
			w.report(res, false)
			if !w.holdFor(m, d) {
				return
			}
		default: // Rejected, or an unknown outcome
			w.bury(ctx, m, j, rec, res)
			return
		}
	}
}

// bury moves the job to the dead-letter stream: the copy first, then the
// ack that removes it from the work stream. A crash in between leaves it
// in both; the next delivery finds its attempts exhausted and buries it
// again, and the dead copy's message id makes that a duplicate.
func (w *workerImpl) bury(ctx context.Context, m jetstream.Msg, j *Job, rec record, res Result) {
	rec.State, rec.NextAttempt = StateDead, time.Time{}
	if rec.Updated.IsZero() {
		rec.Updated = time.Now().UTC()
	}
	if err := w.q.toDead(ctx, j, rec, w.p.Retention, w.o.OnDeadLetterDropped); err != nil {
		w.q.log.Warn("queue: dead-lettering failed, will retry", "queue", w.name, "id", j.ID, "error", err)
		_ = m.NakWithDelay(defaultPause)
		return
	}
	w.putRecord(j.ID, rec)
	_ = m.Ack()
	w.report(res, true)
}

// putRecord writes a status record and waits for its ack. It does not
// use the handler's context: a record is written even while stopping.
// holdFor puts job m off for d. Unordered, it goes back to the store with
// that delay (any worker may take it then) and holdFor returns false: the
// handler is done with it. Ordered, the worker keeps it and waits in place,
// so that nothing behind it overtakes it: true once d has passed, false
// (the job given back) if the worker stops first.
func (w *workerImpl) holdFor(m jetstream.Msg, d time.Duration) bool {
	if !w.p.Ordered {
		_ = m.NakWithDelay(d)
		return false
	}
	if !w.sleep(w.fetchCtx, d) {
		_ = m.Nak()
		return false
	}
	return true
}

// putRecord writes the job's status record and reports whether the store
// acknowledged it; a failure is logged.
func (w *workerImpl) putRecord(id string, rec record) bool {
	if err := w.q.putRecord(context.Background(), id, rec, w.p.Retention); err != nil {
		w.q.log.Warn("queue: status write failed", "queue", w.name, "id", id, "error", err)
		return false
	}
	return true
}

func (w *workerImpl) report(r Result, dead bool) {
	if w.o.OnResult != nil {
		w.o.OnResult(w.name, r, dead)
	}
}

// stop implements Worker.Stop.
func (w *workerImpl) stop(ctx context.Context, wk *Worker) error {
	var err error
	w.stopOnce.Do(func() {
		w.stopFetch()
		done := make(chan struct{})
		go func() {
			w.handlers.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			w.cancelHandler()
			<-done
		}
		w.cancelHandler()
		w.loops.Wait()
		w.q.mu.Lock()
		delete(w.q.workers, wk)
		w.q.mu.Unlock()
	})
	return err
}
