package config

import (
	"reflect"
	"testing"
	"time"
)

func TestTelemetry(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "HONEYCOMB_KEY" {
			return "hc-secret-1234", true
		}
		return "", false
	}
	t.Run("absent is off", func(t *testing.T) {
		cfg, _, err := Parse("t.yaml", []byte(minimal), env)
		if err != nil || cfg.Telemetry != nil {
			t.Fatalf("Telemetry = %+v, %v; want nil", cfg.Telemetry, err)
		}
	})
	t.Run("the brief's keys, defaults filled", func(t *testing.T) {
		y := "telemetry:\n  otlp: {endpoint: 'https://api.honeycomb.io/', protocol: http/protobuf, headers: {x-honeycomb-team: '${HONEYCOMB_KEY}'}}\n  traces: {sample_ratio: 0.01}\n" + minimal
		cfg, _, err := Parse("t.yaml", []byte(y), env)
		if err != nil {
			t.Fatal(err)
		}
		want := &Telemetry{ServiceName: "spillway",
			OTLP:    OTLP{Endpoint: "https://api.honeycomb.io", Protocol: OTLPHTTPProtobuf, Headers: map[string]string{"x-honeycomb-team": "hc-secret-1234"}, Timeout: 10 * time.Second},
			Traces:  Traces{SampleRatio: 0.01},
			Metrics: TelemetryMetrics{Interval: time.Minute}}
		if !reflect.DeepEqual(cfg.Telemetry, want) {
			t.Errorf("Telemetry = %+v\nwant %+v", cfg.Telemetry, want)
		}
	})
	t.Run("an empty section takes every default", func(t *testing.T) {
		cfg, _, err := Parse("t.yaml", []byte("telemetry: {metrics: {interval: 0}}\n"+minimal), env)
		if err != nil {
			t.Fatal(err)
		}
		if tl := cfg.Telemetry; tl == nil || tl.OTLP.Endpoint != DefaultOTLPEndpoint || tl.Metrics.Interval != 0 || tl.Traces.SampleRatio != 0.01 {
			t.Errorf("Telemetry = %+v", cfg.Telemetry)
		}
	})
	for _, tt := range []struct{ name, yaml, want string }{
		{"grpc refused by name", "telemetry: {otlp: {protocol: grpc}}\n",
			"t.yaml:1:30: telemetry.otlp.protocol: grpc is not supported: the gateway exports OTLP over HTTP; write http/protobuf (collectors and agents listen for both, on port 4318)"},
		{"another protocol", "telemetry: {otlp: {protocol: http/json}}\n", `t.yaml:1:30: telemetry.otlp.protocol: "http/json" is not http/protobuf`},
		{"endpoint not a URL", "telemetry: {otlp: {endpoint: '127.0.0.1:4318'}}\n",
			`t.yaml:1:30: telemetry.otlp.endpoint: "127.0.0.1:4318" is not an http:// or https:// URL like http://127.0.0.1:4318 (no query, no user)`},
		{"ratio above 1", "telemetry: {traces: {sample_ratio: 1.5}}\n",
			"t.yaml:1:36: telemetry.traces.sample_ratio: 1.5 is not between 0% and 100% (a plain number is a fraction: write 1.5% for a percentage)"},
		{"bad header name", "telemetry: {otlp: {headers: {'a b': x}}}\n", `t.yaml:1:37: telemetry.otlp.headers: "a b" is not a header name`},
		{"header value with a line break, not echoed", "telemetry: {otlp: {headers: {k: \"x\\ny\"}}}\n", "t.yaml:1:33: telemetry.otlp.headers.k: the value holds a line break or NUL"},
		{"unknown key", "telemetry: {trace: {}}\n", `t.yaml:1:13: unknown key "trace" in telemetry; did you mean "traces"?`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ws, err := Parse("t.yaml", []byte(tt.yaml+minimal), env)
			if got := problems(ws, err); len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}
