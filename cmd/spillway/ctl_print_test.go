package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
)

// TestCtlPrintsTheThrottle: `spillway ctl upstreams NAME` shows an
// upstream's client-side throttle, as the runtime API reports it, and
// nothing of one it does not have.
func TestCtlPrintsTheThrottle(t *testing.T) {
	var v gateway.UpstreamView
	err := json.Unmarshal([]byte(`{"name":"app",
		"policies":{"throttle":{"k":2,"window":"2m0s","max_rejection":0.9}},
		"live":{"throttle":{"rejection_probability":0.42,"requests":1000,"accepts":290,"rejected":420}}}`), &v)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printUpstream(&out, v)
	want := "  throttle  42% refused now (at most 90%), 290 of 1000 requests accepted in 2m0s, 420 rejected\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("printed:\n%s\nwant the line:\n%s", out.String(), want)
	}
	v.Policies.Throttle, v.Live.Throttle = nil, nil
	out.Reset()
	printUpstream(&out, v)
	if strings.Contains(out.String(), "throttle") {
		t.Errorf("an upstream without a throttle printed one:\n%s", out.String())
	}
}
