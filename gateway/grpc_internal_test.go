package gateway

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestParseGRPCTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "50m": 50 * time.Millisecond,
		"7u": 7 * time.Microsecond, "99999999n": 99999999, "99999999M": 99999999 * time.Minute,
	} {
		if got, ok := parseGRPCTimeout(v); !ok || got != want {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "m", "5", "5x", "0m", "-5m", "+5m", "123456789m", "99999999H"} {
		if got, ok := parseGRPCTimeout(v); ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, want refused", v, got)
		}
	}
}

func TestPercentEncode(t *testing.T) {
	if got, want := percentEncode("breaker_open: 100% \"x\" é\n"), "breaker_open: 100%25 \"x\" %C3%A9%0A"; got != want {
		t.Errorf("percentEncode = %q, want %q", got, want)
	}
}

// TestSentGRPCStatus: the status a client got is read where the proxy
// leaves it: in the head (trailers-only), among the trailers the
// ReverseProxy copies after the body (prefixed, or under their own name when
// the upstream announced them); and decides whether the answer failed.
func TestSentGRPCStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      http.Header
		status int
		code   codes.Code
		sent   bool
		failed bool
	}{
		{"head", http.Header{"Grpc-Status": {"14"}}, 200, codes.Unavailable, true, true},
		{"trailers", http.Header{http.TrailerPrefix + "Grpc-Status": {"3"}}, 200, codes.InvalidArgument, true, false},
		{"announced trailers", http.Header{"Trailer": {"Grpc-Status"}, "Grpc-Status": {"0"}}, 200, codes.OK, true, false},
		{"malformed", http.Header{"Grpc-Status": {"x"}}, 200, codes.Unknown, true, true},
		{"none", http.Header{}, 200, codes.OK, false, true},
		{"not a gRPC answer", http.Header{}, 404, codes.OK, false, false},
	} {
		code, sent := sentGRPCStatus(tc.h)
		if code != tc.code || sent != tc.sent {
			t.Errorf("%s: sentGRPCStatus = %v, %v; want %v, %v", tc.name, code, sent, tc.code, tc.sent)
		}
		if got := grpcFailed(tc.status, code, sent); got != tc.failed {
			t.Errorf("%s: grpcFailed(%d, %v, %v) = %v, want %v", tc.name, tc.status, code, sent, got, tc.failed)
		}
	}
}

// TestGRPCStatusName: rpc.response.status_code spells a gRPC status as
// its name in upper snake case, a code gRPC does not define as its number.
func TestGRPCStatusName(t *testing.T) {
	for c, want := range map[codes.Code]string{codes.OK: "OK", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.Unavailable: "UNAVAILABLE", codes.ResourceExhausted: "RESOURCE_EXHAUSTED", codes.Code(17): "17"} {
		if got := grpcStatusName(c); got != want {
			t.Errorf("grpcStatusName(%d) = %q, want %q", c, got, want)
		}
	}
}
