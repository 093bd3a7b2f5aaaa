package config

import (
	"net/url"
	"reflect"
	"strings"
)

// The OTLP protocols (telemetry.otlp.protocol).
const (
	// OTLPHTTPProtobuf is OTLP over HTTP with protobuf bodies, the one the
	// gateway speaks.
	OTLPHTTPProtobuf = "http/protobuf"
	// OTLPGRPC is OTLP over gRPC: refused, with a message saying so.
	OTLPGRPC = "grpc"
)

// DefaultOTLPEndpoint is telemetry.otlp.endpoint when the file does not
// write it: an OpenTelemetry Collector or vendor agent on the same host.
const DefaultOTLPEndpoint = "http://127.0.0.1:4318"

func init() {
	parsers["otlp_protocol"] = func(d *decoder, f field, dst, _ reflect.Value) {
		d.otlpProtocol(f, dst.Addr().Interface().(*string))
	}
	parsers["otlp_endpoint"] = func(d *decoder, f field, dst, _ reflect.Value) {
		d.otlpEndpoint(f, dst.Addr().Interface().(*string))
	}
}

// otlpProtocol accepts http/protobuf; grpc is a known protocol the gateway
// does not speak, refused by name rather than as an unknown value.
func (d *decoder) otlpProtocol(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	switch s {
	case OTLPHTTPProtobuf:
		*dst = s
	case OTLPGRPC:
		d.errorf(f.node(), f.path, "%s: grpc is not supported: the gateway exports OTLP over HTTP; write %s (collectors and agents listen for both, on port 4318)",
			key(f.path), OTLPHTTPProtobuf)
	default:
		d.errorf(f.node(), f.path, "%s: %q is not %s", key(f.path), s, OTLPHTTPProtobuf)
	}
}

// otlpEndpoint accepts an http:// or https:// URL with a host and no query:
// the base the exporters add /v1/traces and /v1/metrics to.
func (d *decoder) otlpEndpoint(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		d.errorf(f.node(), f.path, "%s: %q is not an http:// or https:// URL like %s (no query, no user)", key(f.path), s, DefaultOTLPEndpoint)
		return
	}
	*dst = strings.TrimSuffix(s, "/")
}

// validateTelemetry checks the names of telemetry.otlp.headers: an export
// with a malformed header name would fail at every attempt, far from the
// file.
func (d *decoder) validateTelemetry(t *Telemetry) {
	if t == nil {
		return
	}
	for name, v := range t.OTLP.Headers {
		p := "$.telemetry.otlp.headers." + name
		switch {
		case !validToken(name):
			d.errPath(p, "telemetry.otlp.headers: %q is not a header name", name)
		case strings.ContainsAny(v, "\r\n\x00"):
			// The value is likely a secret: not quoted.
			d.errPath(p, "telemetry.otlp.headers.%s: the value holds a line break or NUL", name)
		}
	}
	if t.ServiceName == "" {
		d.errPath("$.telemetry.service_name", "telemetry.service_name: must not be empty")
	}
}
