package pool

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxParallelChecks bounds the health checks of one round that run at once.
const maxParallelChecks = 8

// Start starts the active health checks: one goroutine, which checks every
// instance at once and then every Health.Interval (±10 %). It does nothing
// without Options.Health, when called again, or after Close.
func (p *Pool) Start() {
	if p.health == nil {
		return
	}
	p.startOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cancel != nil { // closed before it started
			return
		}
		var ctx context.Context
		ctx, p.cancel = context.WithCancel(context.Background())
		p.checkerDone = make(chan struct{})
		go p.runChecks(ctx)
	})
}

// Close stops the health checks and waits for the checker to return; a
// check in progress is canceled and does not count. It is safe to call more
// than once, and without Start.
func (p *Pool) Close() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		if p.cancel == nil {
			p.cancel = func() {}
		}
		p.cancel()
		done := p.checkerDone
		p.mu.Unlock()
		if done != nil {
			<-done
		}
		if p.transport != nil {
			p.transport.CloseIdleConnections()
		}
	})
}

// runChecks is the checker goroutine.
func (p *Pool) runChecks(ctx context.Context) {
	defer close(p.checkerDone)
	for {
		next := time.NewTimer(p.jittered())
		p.checkRound(ctx)
		select {
		case <-ctx.Done():
			next.Stop()
			return
		case <-next.C:
		}
	}
}

// jittered returns Health.Interval ±10 %.
func (p *Pool) jittered() time.Duration {
	iv := p.health.Interval
	return iv - iv/10 + time.Duration(p.rand()*float64(iv/5))
}

// checkRound checks every instance, at most maxParallelChecks at once, and
// returns when all checks are done.
func (p *Pool) checkRound(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelChecks)
	for _, in := range p.instances {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			p.checkOne(ctx, in)
		})
	}
	wg.Wait()
}

// checkOne checks one instance and applies the result.
func (p *Pool) checkOne(ctx context.Context, in *Instance) {
	cctx, cancel := context.WithTimeout(ctx, p.health.Timeout)
	err := p.check(cctx, in.healthURL)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		in.fails = 0
		in.passes++
		if !in.healthy.Load() && in.passes >= p.health.HealthyAfter {
			in.healthy.Store(true)
			p.unhealthy.Add(-1)
			in.startRamp(p.clock.Nanotime())
			p.logger.Info("spillway: instance healthy", "upstream", p.name, "instance", in.raw, "passes", in.passes)
			p.transition(in, "healthy", 0)
		}
		return
	}
	in.passes = 0
	in.fails++
	if in.healthy.Load() && in.fails >= p.health.UnhealthyAfter {
		in.healthy.Store(false)
		p.unhealthy.Add(1)
		p.logger.Warn("spillway: instance unhealthy", "upstream", p.name, "instance", in.raw, "failures", in.fails, "error", err)
		p.transition(in, "unhealthy", 0)
	}
}

// httpCheck returns the default health check: a GET through c that passes
// on a 2xx answer.
func httpCheck(c *http.Client) func(context.Context, *url.URL) error {
	return func(ctx context.Context, u *url.URL) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "spillway-health-check")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("health check %s: status %d", u.Redacted(), resp.StatusCode)
		}
		return nil
	}
}
