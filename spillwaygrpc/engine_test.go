package spillwaygrpc_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwaygrpc"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// integration makes one call, with the given outcome, through one of the
// three users of spillway.Engine, guarded by b and observed by obs.
type integration struct {
	policy string
	call   func(t *testing.T, b *breaker.Breaker, obs spillway.Observer, outcome string)
}

// The downstream's answer in each integration's terms: "ok", "down" (a
// failure the breaker counts) or "cancel" (the caller cancels while the
// call is in flight, and the downstream reports it as its transport does).
var integrations = []integration{
	{"pipeline", func(t *testing.T, b *breaker.Breaker, obs spillway.Observer, outcome string) {
		pl := spillway.MustNewPipeline(spillway.Policies[int]{Guards: []spillway.Guard{b}, Observer: obs, Name: "d"})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, _ = pl.Execute(ctx, func(ctx context.Context) (int, error) {
			switch outcome {
			case "down":
				return 0, errors.New("down")
			case "cancel":
				cancel()
				return 0, ctx.Err()
			}
			return 1, nil
		})
	}},
	{"http", func(t *testing.T, b *breaker.Breaker, obs spillway.Observer, outcome string) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		base := roundTripper(func(r *http.Request) (*http.Response, error) {
			switch outcome {
			case "down":
				return &http.Response{StatusCode: 503, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
			case "cancel":
				cancel()
				return nil, r.Context().Err()
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
		})
		tr := spillwayhttp.MustNew(spillwayhttp.Config{Base: base, Observer: obs,
			Key: func(*http.Request) string { return "d" },
			NewDownstream: func(string, spillway.Observer) (*spillwayhttp.Downstream, error) {
				return &spillwayhttp.Downstream{Breaker: b}, nil
			}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://d.test/", nil)
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}},
	{"grpc", func(t *testing.T, b *breaker.Breaker, obs spillway.Observer, outcome string) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ic := spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{Observer: obs,
			Key: func(*grpc.ClientConn, string) string { return "d" },
			NewDownstream: func(string, spillway.Observer) (*spillwaygrpc.Downstream, error) {
				return &spillwaygrpc.Downstream{Breaker: b}, nil
			}})
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			switch outcome {
			case "down":
				return status.Error(codes.Unavailable, "down")
			case "cancel":
				// gRPC reports the caller's cancellation as a CANCELED
				// status, which wraps no context error.
				cancel()
				return status.Error(codes.Canceled, "context canceled")
			}
			return nil
		}
		_ = ic(ctx, "/t/M", nil, nil, nil, invoker)
	}},
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestOneEngineAcrossIntegrations: the Pipeline, the HTTP transport and the
// gRPC interceptor run their attempts on one engine, so they report the same
// EventAttempt (their Policy aside) and classify alike: a failure is counted
// by the breaker, the caller's cancellation is not (issue 10).
func TestOneEngineAcrossIntegrations(t *testing.T) {
	for _, in := range integrations {
		for _, tc := range []struct {
			outcome  string
			failures int
		}{
			{"ok", 0},
			{"down", 1},
			{"cancel", 0},
		} {
			t.Run(in.policy+"/"+tc.outcome, func(t *testing.T) {
				b := breaker.MustNew(breaker.Config{Name: "d"})
				obs := spillway.NewChannelObserver(8)
				in.call(t, b, obs, tc.outcome)
				if len(obs.C) != 1 {
					t.Fatalf("%d events, want one EventAttempt", len(obs.C))
				}
				ev := <-obs.C
				if ev.Kind != spillway.EventAttempt || ev.Policy != in.policy || ev.Name != "d" || ev.Attempt != 1 ||
					ev.Context == nil || ev.Duration < 0 || (ev.Err != nil) != (tc.outcome != "ok") {
					t.Errorf("event %+v", ev)
				}
				s := b.Snapshot()
				wantCalls := 1
				if tc.outcome == "cancel" {
					wantCalls = 0
				}
				if s.Calls != wantCalls || s.Failures != tc.failures {
					t.Errorf("breaker counted %d calls, %d failures; want %d and %d", s.Calls, s.Failures, wantCalls, tc.failures)
				}
			})
		}
	}
}

// TestStreamOpeningRunsOnTheEngine: each attempt to open a stream is an
// engine attempt: it reports an EventAttempt and is classified as a unary
// attempt is; the caller's cancellation is not counted.
func TestStreamOpeningRunsOnTheEngine(t *testing.T) {
	for _, tc := range []struct {
		outcome  string
		failures int
	}{
		{"down", 1},
		{"cancel", 0},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			b := breaker.MustNew(breaker.Config{Name: "d"})
			obs := spillway.NewChannelObserver(8)
			ic := spillwaygrpc.StreamClientInterceptor(spillwaygrpc.Config{Observer: obs,
				Key: func(*grpc.ClientConn, string) string { return "d" },
				NewDownstream: func(string, spillway.Observer) (*spillwaygrpc.Downstream, error) {
					return &spillwaygrpc.Downstream{Breaker: b}, nil
				}})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				if tc.outcome == "cancel" {
					cancel()
					return nil, status.Error(codes.Canceled, "context canceled")
				}
				return nil, status.Error(codes.Unavailable, "down")
			}
			if _, err := ic(ctx, &grpc.StreamDesc{ServerStreams: true}, nil, "/t/M", streamer); err == nil {
				t.Fatal("the stream opened")
			}
			if len(obs.C) != 1 {
				t.Fatalf("%d events, want one EventAttempt", len(obs.C))
			}
			if ev := <-obs.C; ev.Kind != spillway.EventAttempt || ev.Policy != "grpc" || ev.Name != "d" || ev.Attempt != 1 || ev.Err == nil {
				t.Errorf("event %+v", ev)
			}
			if s := b.Snapshot(); s.Failures != tc.failures || s.Calls != tc.failures {
				t.Errorf("breaker counted %d calls, %d failures; want %d of each", s.Calls, s.Failures, tc.failures)
			}
		})
	}
}
