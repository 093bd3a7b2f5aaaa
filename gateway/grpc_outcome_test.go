package gateway_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// wantRequests waits until g has counted n requests of route svc with
// outcome, and checks that it counted none with any other outcome.
func wantRequests(t *testing.T, g *gateway.Gateway, outcome string, n float64) {
	t.Helper()
	requests := func(o string) float64 {
		return max(gatewayMetric(t, g, "spillway_requests_total", "route", "svc", "outcome", o), 0)
	}
	waitFor(t, fmt.Sprintf("%v requests counted %s", n, outcome), func() bool { return requests(outcome) == n })
	for _, o := range []string{"success", "upstream_5xx", "fallback", "error", "canceled"} {
		if got := requests(o); o != outcome && got != 0 {
			t.Errorf("%v requests counted %s, want 0", got, o)
		}
	}
}

// unaryCode makes one unary call and returns the code it ended with.
func unaryCode(t *testing.T, c testpb.TestServiceClient) codes.Code {
	t.Helper()
	_, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{})
	return status.Code(err)
}

// TestGRPCStatusDecidesTheRequestOutcome: a gRPC answer passed through
// counts in spillway_requests_total as its grpc-status says, in its
// trailers or in its head (trailers-only): upstream_5xx for a status
// spillwaygrpc counts as a failure, as for a 5xx, success otherwise.
func TestGRPCStatusDecidesTheRequestOutcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    codes.Code
		unary   bool // a trailers-only answer, not a stream
		outcome string
	}{
		{"TrailerUnavailable", codes.Unavailable, false, "upstream_5xx"},
		{"TrailersOnlyUnavailable", codes.Unavailable, true, "upstream_5xx"},
		{"TrailerInvalidArgument", codes.InvalidArgument, false, "success"},
		{"TrailersOnlyNotFound", codes.NotFound, true, "success"},
		{"TrailerOK", codes.OK, false, "success"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newLateFailUpstream(t, tc.code)
			g, c := lateFailGateway(t, "    retry: {max_attempts: 1}\n    breaker: {min_calls: 1000}", u.addr)
			for i := range 2 {
				got := codes.OK
				if tc.unary {
					got = unaryCode(t, c)
				} else {
					got = lateStream(t, c).Code()
				}
				if got != tc.code {
					t.Fatalf("call %d: %v, want the upstream's %v", i, got, tc.code)
				}
			}
			wantRequests(t, g, tc.outcome, 2)
		})
	}
}

// TestGRPCAbandonedStreamCountsCanceled: a call whose client leaves
// mid-stream is canceled, whatever status the upstream would have ended
// it with; its access log line has no grpc_status (none was sent).
func TestGRPCAbandonedStreamCountsCanceled(t *testing.T) {
	u := newLateFailUpstream(t, codes.Unavailable)
	u.delay.Store(int64(10 * time.Minute)) // the client leaves first
	buf := &spillwaytest.Buffer{}
	g, c := lateFailGatewayWith(t, "", gateway.Options{AccessLogWriter: buf}, u.addr)
	abandonStream(t, c)
	wantRequests(t, g, "canceled", 1)
	lines := accessLines(t, buf)
	if len(lines) != 1 || lines[0]["outcome"] != "canceled" {
		t.Fatalf("access log %v, want one canceled line", lines)
	}
	if v, ok := lines[0]["grpc_status"]; ok {
		t.Errorf("the canceled call's line has grpc_status %v, want none", v)
	}
}

// accessLines returns the access log lines in buf, in order.
func accessLines(t *testing.T, buf *spillwaytest.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestGRPCStatusInTheAccessLog: the access log line of a gRPC call has
// its outcome and the grpc-status its client got (grpc_status): the
// upstream's, in the trailers or the head, or the gateway's own refusal's.
// Both writers (AccessLog and AccessLogWriter) write it.
func TestGRPCStatusInTheAccessLog(t *testing.T) {
	for _, writer := range []bool{false, true} {
		t.Run(fmt.Sprintf("AccessLogWriter=%v", writer), func(t *testing.T) {
			buf := &spillwaytest.Buffer{}
			o := gateway.Options{AccessLog: slog.New(slog.NewJSONHandler(buf, nil))}
			if writer {
				o = gateway.Options{AccessLogWriter: buf}
			}
			u := newLateFailUpstream(t, codes.Unavailable)
			g, c := lateFailGatewayWith(t, "    retry: {max_attempts: 1}\n    breaker: {min_calls: 1000}", o, u.addr)
			lateStreams(t, c, 1, codes.Unavailable, "late") // upstream_5xx, in the trailers
			u.code.Store(int32(codes.InvalidArgument))
			if got := unaryCode(t, c); got != codes.InvalidArgument { // success, trailers-only
				t.Fatalf("unary call: %v, want InvalidArgument", got)
			}
			if _, err := g.SetBreaker(operator, "svc", "forced_open"); err != nil {
				t.Fatal(err)
			}
			if got := unaryCode(t, c); got != codes.Unavailable { // error: breaker_open
				t.Fatalf("refused call: %v, want Unavailable", got)
			}
			want := []struct {
				outcome string
				code    float64
			}{{"upstream_5xx", 14}, {"success", 3}, {"error", 14}}
			waitFor(t, "three access log lines", func() bool { return len(accessLines(t, buf)) == len(want) })
			for i, l := range accessLines(t, buf) {
				if w := want[i]; l["outcome"] != w.outcome || l["grpc_status"] != w.code || l["status"] != 200.0 {
					t.Errorf("line %d: outcome %v status %v grpc_status %v, want %s 200 %v", i, l["outcome"], l["status"], l["grpc_status"], w.outcome, w.code)
				}
			}
		})
	}
}
