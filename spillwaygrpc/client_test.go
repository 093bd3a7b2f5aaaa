package spillwaygrpc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwaygrpc"
	"github.com/spillway-dev/spillway/timeout"
)

// failFirst fails the first n calls with code c.
func failFirst(n int64, c codes.Code) func(context.Context, int64) error {
	return func(_ context.Context, i int64) error {
		if i <= n {
			return status.Error(c, "scripted")
		}
		return nil
	}
}

func TestUnaryRetriesRetryableCodesUpToMaxAttempts(t *testing.T) {
	for _, c := range []codes.Code{codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded} {
		t.Run(c.String(), func(t *testing.T) {
			t.Run("recovers", func(t *testing.T) {
				srv := &scripted{script: failFirst(2, c)}
				cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: quietBreaker()})
				if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
					t.Fatalf("err = %v, want success on the third attempt", err)
				}
				if got := srv.unary.Load(); got != 3 {
					t.Fatalf("server saw %d attempts, want 3", got)
				}
			})
			t.Run("exhausts", func(t *testing.T) {
				srv := &scripted{script: failFirst(100, c)}
				b := quietBreaker()
				cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b})
				_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
				if got := srv.unary.Load(); got != 3 {
					t.Fatalf("server saw %d attempts, want max_attempts = 3", got)
				}
				if status.Code(err) != c || !errors.Is(err, retry.ErrExhausted) || spillway.ReasonOf(err) != spillway.ReasonUpstreamError {
					t.Fatalf("err = %v (code %v, reason %q), want %v wrapped in retry.ErrExhausted", err, status.Code(err), spillway.ReasonOf(err), c)
				}
				if s := b.Snapshot(); s.Failures != 3 {
					t.Fatalf("breaker counted %d failures, want 3", s.Failures)
				}
			})
		})
	}
}

func TestUnaryClientErrorsAreNotRetriedNorCounted(t *testing.T) {
	for _, c := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.AlreadyExists, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.Canceled} {
		t.Run(c.String(), func(t *testing.T) {
			srv := &scripted{script: failFirst(100, c)}
			b := quietBreaker()
			cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b})
			_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
			if status.Code(err) != c {
				t.Fatalf("err = %v, want code %v", err, c)
			}
			if got := srv.unary.Load(); got != 1 {
				t.Fatalf("server saw %d attempts, want 1 (not retried)", got)
			}
			if s := b.Snapshot(); s.Failures != 0 || s.State != breaker.Closed {
				t.Fatalf("breaker %+v, want no failure", s)
			}
		})
	}
}

func TestUnaryServerFaultsAreCountedButNotRetried(t *testing.T) {
	for _, c := range []codes.Code{codes.Internal, codes.Unknown, codes.DataLoss} {
		t.Run(c.String(), func(t *testing.T) {
			srv := &scripted{script: failFirst(100, c)}
			b := quietBreaker()
			cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b})
			_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
			if status.Code(err) != c || srv.unary.Load() != 1 {
				t.Fatalf("err = %v after %d attempts, want %v after 1", err, srv.unary.Load(), c)
			}
			if s := b.Snapshot(); s.Failures != 1 {
				t.Fatalf("breaker counted %d failures, want 1", s.Failures)
			}
		})
	}
}

func TestUnaryCustomRetryableAndClassify(t *testing.T) {
	srv := &scripted{script: failFirst(1, codes.Internal)}
	b := quietBreaker()
	p := &policies{d: &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b}}
	cfg := p.config()
	cfg.Retryable = func(err error) bool { return spillwaygrpc.Retryable(err) || status.Code(err) == codes.Internal }
	cfg.Classify = func(err error) spillway.Outcome {
		if status.Code(err) == codes.Internal {
			return spillway.Ignored
		}
		return spillwaygrpc.Classify(err)
	}
	cl := dial(t, serve(t, srv), grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(cfg)))
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if srv.unary.Load() != 2 {
		t.Fatalf("server saw %d attempts, want 2", srv.unary.Load())
	}
	if s := b.Snapshot(); s.Failures != 0 || s.Calls != 1 {
		t.Fatalf("breaker %+v: want the INTERNAL ignored and the success recorded", s)
	}
}

// blockUntilDone makes a handler wait for its context: the client's deadline
// or attempt timeout ends it.
func blockUntilDone(ctx context.Context, _ int64) error {
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

func TestUnaryCallerDeadlineIsCountedButNotRetried(t *testing.T) {
	srv := &scripted{script: blockUntilDone}
	b := quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := cl.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DEADLINE_EXCEEDED", err)
	}
	if srv.unary.Load() != 1 {
		t.Fatalf("server saw %d attempts, want 1: nothing is retried past the deadline", srv.unary.Load())
	}
	if s := b.Snapshot(); s.Failures != 1 {
		t.Fatalf("breaker counted %d failures, want 1", s.Failures)
	}
}

func TestUnaryCallerCancellationIsNotCounted(t *testing.T) {
	entered := make(chan struct{})
	srv := &scripted{script: func(ctx context.Context, n int64) error {
		close(entered)
		return blockUntilDone(ctx, n)
	}}
	b := quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-entered
		cancel()
	}()
	_, err := cl.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.Canceled || srv.unary.Load() != 1 {
		t.Fatalf("err = %v after %d attempts, want CANCELED after 1", err, srv.unary.Load())
	}
	if s := b.Snapshot(); s.Calls != 0 {
		t.Fatalf("breaker recorded %d calls, want the cancellation ignored", s.Calls)
	}
}

func TestUnaryAttemptTimeoutIsRetriedWhileTimeRemains(t *testing.T) {
	srv := &scripted{script: func(ctx context.Context, n int64) error {
		if n <= 2 {
			return blockUntilDone(ctx, n)
		}
		return nil
	}}
	b := quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b,
		Attempt: timeout.MustNew(timeout.Config{Duration: 50 * time.Millisecond})})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := cl.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if srv.unary.Load() != 3 {
		t.Fatalf("server saw %d attempts, want 3", srv.unary.Load())
	}
	if s := b.Snapshot(); s.Failures != 2 {
		t.Fatalf("breaker counted %d failures, want the 2 timed-out attempts", s.Failures)
	}
}

func TestUnaryAttemptTimeoutError(t *testing.T) {
	srv := &scripted{script: blockUntilDone}
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{
		Attempt: timeout.MustNew(timeout.Config{Duration: 20 * time.Millisecond})})
	_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded || spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded || !errors.Is(err, timeout.ErrTimeout) {
		t.Fatalf("err = %v (reason %q), want the attempt timeout's deadline_exceeded", err, spillway.ReasonOf(err))
	}
}

func TestUnaryNoRetryWhoseBackoffPassesTheDeadline(t *testing.T) {
	srv := &scripted{script: failFirst(100, codes.Unavailable)}
	r := retry.MustNew(retry.Config{Backoff: retry.Constant, Initial: time.Second, Jitter: retry.NoJitter, NoBudget: true})
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: r})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.UnaryCall(ctx, &testpb.SimpleRequest{})
	if srv.unary.Load() != 1 || !errors.Is(err, retry.ErrExhausted) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v after %d attempts, want retry.ErrExhausted after 1", err, srv.unary.Load())
	}
	if d := time.Since(start); d >= 300*time.Millisecond {
		t.Fatalf("took %v: the policy should stop at once instead of sleeping into the deadline", d)
	}
}

func TestUnaryBudgetBoundsRetriesDuringAnOutage(t *testing.T) {
	srv := &scripted{script: failFirst(1<<40, codes.Unavailable)}
	// A clock that stands still keeps every request in the window.
	budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.1, MinPerSecond: -1, Clock: spillway.NewManualClock(0)})
	r := retry.MustNew(retry.Config{Initial: time.Millisecond, Max: time.Millisecond, Budget: budget})
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: r})
	const calls = 200
	refused := 0
	for range calls {
		_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want UNAVAILABLE", err)
		}
		if spillway.ReasonOf(err) == spillway.ReasonBudgetExhausted {
			refused++
			if !errors.Is(err, retry.ErrBudgetExhausted) {
				t.Fatalf("err = %v, want retry.ErrBudgetExhausted", err)
			}
		}
	}
	attempts := srv.unary.Load()
	retries := attempts - calls
	// 10 % of 200 requests, plus the budget's documented slack of 15
	// uncounted requests (1.5 retries).
	if retries < 18 || retries > 22 {
		t.Fatalf("%d retries over %d calls, want about 20 (10 %%), not %d", retries, calls, 2*calls)
	}
	if refused < calls-30 {
		t.Fatalf("only %d calls ended with budget_exhausted", refused)
	}
	t.Logf("%d calls, %d attempts (%d retries), %d refused by the budget", calls, attempts, retries, refused)
}

func TestUnaryBreakerOpensThenRejectsWithoutCallingTheServer(t *testing.T) {
	srv := &scripted{script: failFirst(1<<40, codes.Unavailable)}
	b := breaker.MustNew(breaker.Config{Name: "backend", WindowSize: 10, MinCalls: 5})
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Breaker: b, Retry: fastRetry(1)})
	for range 5 {
		if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want the server's UNAVAILABLE", err)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("breaker %v after 5 failures, want open", b.State())
	}
	_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
	if got := srv.unary.Load(); got != 5 {
		t.Fatalf("server saw %d calls, want 5: the open breaker must not call it", got)
	}
	checkRejection(t, err, spillway.ReasonBreakerOpen, breaker.ErrOpen)
	if d, ok := spillway.RetryAfterOf(err); !ok || d != 30*time.Second {
		t.Fatalf("RetryAfterOf = %v, %v; want the open duration", d, ok)
	}
}

// checkRejection checks that err is a local rejection seen through gRPC.
func checkRejection(t *testing.T, err error, reason spillway.Reason, sentinel error) {
	t.Helper()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("status.Code(%v) = %v, want UNAVAILABLE", err, status.Code(err))
	}
	if st, ok := status.FromError(err); !ok || st.Code() != codes.Unavailable {
		t.Fatalf("status.FromError(%v) = %v, %v", err, st, ok)
	}
	if spillway.ReasonOf(err) != reason || !errors.Is(err, sentinel) || !spillway.IsRejection(err) {
		t.Fatalf("err = %v: reason %q, want %q wrapping %v", err, spillway.ReasonOf(err), reason, sentinel)
	}
	var gerr *spillwaygrpc.Error
	var serr *spillway.Error
	if !errors.As(err, &gerr) || !errors.As(err, &serr) || serr.Code != reason {
		t.Fatalf("err = %#v: want a *spillwaygrpc.Error wrapping a *spillway.Error", err)
	}
}

func TestUnaryClientBulkheadRejects(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &scripted{script: func(_ context.Context, n int64) error {
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	bh := newBulkhead(1)
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Bulkhead: bh, Retry: fastRetry(3)})
	done := make(chan error)
	go func() {
		_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		done <- err
	}()
	<-entered
	_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
	checkRejection(t, err, spillway.ReasonBulkheadFull, bulkhead.ErrFull)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if bh.InFlight() != 0 || srv.unary.Load() != 1 {
		t.Fatalf("in flight %d, server calls %d; want 0 and 1", bh.InFlight(), srv.unary.Load())
	}
}

func TestUnaryPushback(t *testing.T) {
	pushback := func(v string) func(context.Context, int64) error {
		return func(ctx context.Context, n int64) error {
			if n == 1 {
				_ = grpc.SetTrailer(ctx, metadata.Pairs(spillwaygrpc.PushbackKey, v))
				return status.Error(codes.Unavailable, "later")
			}
			return nil
		}
	}
	t.Run("honoured", func(t *testing.T) {
		srv := &scripted{script: pushback("200")}
		cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: retry.MustNew(retry.Config{Initial: time.Millisecond, NoBudget: true})})
		start := time.Now()
		if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || srv.unary.Load() != 2 {
			t.Fatalf("retried after %v with %d attempts, want >= 200ms and 2", d, srv.unary.Load())
		}
	})
	t.Run("caller's trailer option kept", func(t *testing.T) {
		srv := &scripted{script: pushback("50")}
		cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: retry.MustNew(retry.Config{Initial: time.Millisecond, NoBudget: true})})
		var md metadata.MD
		start := time.Now()
		if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}, grpc.Trailer(&md)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("retried after %v, want the pushback read through the caller's own trailer", d)
		}
	})
	for _, v := range []string{"-1", "soon"} {
		t.Run("forbids "+v, func(t *testing.T) {
			srv := &scripted{script: pushback(v)}
			cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3)})
			_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
			if status.Code(err) != codes.Unavailable || srv.unary.Load() != 1 {
				t.Fatalf("err = %v after %d attempts, want UNAVAILABLE after 1", err, srv.unary.Load())
			}
		})
	}
}

func TestDownstreamsAreKeyedAndCreatedOnce(t *testing.T) {
	srv := &scripted{}
	addr := serve(t, srv)
	var created []string
	cfg := spillwaygrpc.Config{
		Key: func(cc *grpc.ClientConn, method string) string { return method },
		NewDownstream: func(key string, obs spillway.Observer) (*spillwaygrpc.Downstream, error) {
			created = append(created, key)
			return spillwaygrpc.DefaultDownstream(key, obs)
		},
	}
	cl := dial(t, addr, grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(cfg)))
	for range 3 {
		if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.EmptyCall(t.Context(), &testpb.Empty{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("EmptyCall: %v", err)
		}
	}
	if fmt.Sprint(created) != "[/grpc.testing.TestService/UnaryCall /grpc.testing.TestService/EmptyCall]" {
		t.Fatalf("created %v", created)
	}
}

func TestNewDownstreamErrorFailsTheCall(t *testing.T) {
	fail := errors.New("bad config")
	n := 0
	cfg := spillwaygrpc.Config{NewDownstream: func(string, spillway.Observer) (*spillwaygrpc.Downstream, error) {
		n++
		if n == 1 {
			return nil, fail
		}
		return &spillwaygrpc.Downstream{}, nil
	}}
	cl := dial(t, serve(t, &scripted{}), grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(cfg)))
	_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
	if status.Code(err) != codes.Internal || !errors.Is(err, fail) {
		t.Fatalf("err = %v, want INTERNAL wrapping the error", err)
	}
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("second call: %v, want NewDownstream tried again", err)
	}
}

func TestUnaryDefaultConfig(t *testing.T) {
	srv := &scripted{script: failFirst(1, codes.Unavailable)}
	cl := dial(t, serve(t, srv), grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{})))
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if srv.unary.Load() != 2 {
		t.Fatalf("server saw %d attempts, want 2", srv.unary.Load())
	}
}
