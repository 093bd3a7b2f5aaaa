package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestAccessLineIsTheJSONOfSlog(t *testing.T) {
	var buf bytes.Buffer
	writeAccessLine(&buf, accessLine{time: time.Now(), route: "catalog", upstream: "catalog", method: "GET", path: "/items/\"x\"\\\n\x01\xff/ü",
		status: 503, duration: 1500 * time.Microsecond, attempts: 3, outcome: "fallback", reason: "breaker_open", fallback: "static", fault: "abort"})
	line := buf.Bytes()
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	want := map[string]any{"level": "INFO", "msg": "request", "route": "catalog", "upstream": "catalog", "method": "GET",
		"path": "/items/\"x\"\\\n\x01\ufffd/ü", "status": 503.0, "duration": 0.0015, "attempts": 3.0,
		"outcome": "fallback", "reason": "breaker_open", "fallback": "static", "fault": "abort"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
	if v, ok := got["grpc_status"]; ok {
		t.Errorf("an HTTP request's line has grpc_status %v", v)
	}
}

// A gRPC call's line ends with the grpc-status its client got.
func TestAccessLineGRPCStatus(t *testing.T) {
	var buf bytes.Buffer
	writeAccessLine(&buf, accessLine{time: time.Now(), route: "svc", status: 200, outcome: "upstream_5xx", grpcSent: true, grpcStatus: codes.Unavailable})
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.Bytes())
	}
	if got["grpc_status"] != 14.0 || got["outcome"] != "upstream_5xx" {
		t.Errorf("grpc_status %v outcome %v, want 14 upstream_5xx", got["grpc_status"], got["outcome"])
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\", "\x00\x1f", "\xff\xfe", "ü€😀", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %q: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var w string
		_ = json.Unmarshal(want, &w)
		if got != w {
			t.Fatalf("%q decodes to %q, encoding/json gives %q", s, got, w)
		}
	})
}
