package gateway

import (
	"crypto/tls"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCaptureStopsCopyingAnOverLimitBody: a streamed body stops being
// copied, and its copy is dropped, once it exceeds the entry's limit; it is
// then never stored.
func TestCaptureStopsCopyingAnOverLimitBody(t *testing.T) {
	stored := false
	b := &captureBody{ReadCloser: io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), limit: 40,
		done: func([]byte) { stored = true }}
	p := make([]byte, 30)
	if _, err := b.Read(p); err != nil || b.buf.Len() != 30 {
		t.Fatalf("first read: copied %d, %v", b.buf.Len(), err)
	}
	if _, err := b.Read(p); err != nil || !b.over || b.buf.Cap() != 0 {
		t.Fatalf("over the limit: over %v, copy of %d bytes kept, %v", b.over, b.buf.Cap(), err)
	}
	if n, err := io.Copy(io.Discard, b); n != 40 || err != nil || stored || b.buf.Cap() != 0 {
		t.Fatalf("rest: %d bytes, %v; stored %v, copy of %d bytes", n, err, stored, b.buf.Cap())
	}
}

// TestBaseKeyIsTheEffectiveTargetURI: the key names the method, scheme,
// host (lower case, with its port), escaped path and query.
func TestBaseKeyIsTheEffectiveTargetURI(t *testing.T) {
	r := httptest.NewRequest("GET", "http://Shop.Example:8080/a%2Fb?q=1", nil)
	if k := baseKey(r); k != "GET http://shop.example:8080/a%2Fb?q=1" {
		t.Errorf("plain: %q", k)
	}
	r.TLS = &tls.ConnectionState{}
	if k := baseKey(r); k != "GET https://shop.example:8080/a%2Fb?q=1" {
		t.Errorf("TLS: %q", k)
	}
}
