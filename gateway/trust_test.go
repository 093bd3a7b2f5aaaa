package gateway_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/spillway-dev/spillway/queue"
)

// TestHeadersOnlyAProxyMaySetAreNotPassedThrough: what a client says about
// its address or the URL it asked for does not reach the upstream;
// X-Real-IP is the client's address, as X-Forwarded-For.
func TestHeadersOnlyAProxyMaySetAreNotPassedThrough(t *testing.T) {
	up := newRecordingUpstream(t)
	h := start(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil))
	forged := map[string]string{
		"X-Real-IP": "10.0.0.1", "True-Client-IP": "10.0.0.2", "X-Client-IP": "10.0.0.3", "CF-Connecting-IP": "10.0.0.4",
		"Fastly-Client-IP": "10.0.0.5", "X-Cluster-Client-IP": "10.0.0.6", "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin",
		"X-Original-URI": "/admin", "X-Forwarded-Prefix": "/admin", "X-Forwarded-Port": "443", "X-Forwarded-Server": "evil",
		"X-Forwarded-User": "root", "X-Forwarded-For": "10.0.0.7", "X-Forwarded-Host": "evil", "X-Forwarded-Proto": "https",
		"Forwarded": "for=10.0.0.8", "X-Host": "evil", "X-Original-Host": "evil",
		"X_Real_IP": "10.0.0.9", "x_forwarded_prefix": "/admin",
		"X-Request-Id": "kept",
	}
	resp, _ := h.do(t, http.MethodGet, "/app/x", forged, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	got := up.requests()[0].header
	for name := range forged {
		switch name {
		case "X-Request-Id":
			if got.Get(name) != "kept" {
				t.Errorf("%s was dropped", name)
			}
		case "X-Real-IP", "X-Forwarded-For":
			if got.Get(name) != "127.0.0.1" {
				t.Errorf("%s: %q, want the client's address 127.0.0.1", name, got[http.CanonicalHeaderKey(name)])
			}
		case "X-Forwarded-Host":
			if v := got.Get(name); v == "evil" {
				t.Errorf("%s: the client's %q", name, v)
			}
		case "X-Forwarded-Proto":
			if v := got.Get(name); v != "http" {
				t.Errorf("%s: %q, want http", name, v)
			}
		default:
			if v, ok := got[http.CanonicalHeaderKey(name)]; ok {
				t.Errorf("%s reached the upstream: %q", name, v)
			}
		}
	}
}

// TestAsyncDeliveryDropsHeadersOnlyAProxyMaySet: a stored request is
// delivered as a proxied one would be — forged client-address and URL
// headers dropped, X-Real-IP set — and a Connection header naming
// Idempotency-Key does not take the client's key away from the delivery.
func TestAsyncDeliveryDropsHeadersOnlyAProxyMaySet(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueue(t))
	a := h.post(t, "/orders/new", map[string]string{
		"X-Real-IP": "10.0.0.1", "True-Client-IP": "10.0.0.2", "X-Original-URL": "/admin", "X-Forwarded-Prefix": "/admin",
		"Idempotency-Key": "client-key", "Connection": "Idempotency-Key",
	}, "{}")
	h.waitState(t, a.ID, queue.StateDelivered)
	r := u.all()[0]
	for k, want := range map[string]string{
		"X-Real-Ip": "127.0.0.1", "X-Forwarded-For": "127.0.0.1", "True-Client-Ip": "", "X-Original-Url": "",
		"X-Forwarded-Prefix": "", "Idempotency-Key": "client-key",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("delivery carried %s: %q, want %q", k, got, want)
		}
	}
}
