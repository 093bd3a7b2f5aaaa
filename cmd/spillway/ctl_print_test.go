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

// TestCtlPrintsShedAndSlowStart: `spillway ctl upstreams NAME` shows the
// requests shed by class, a breaker's and an instance's slow start, as the
// runtime API reports them, and nothing of what the upstream does not
// have.
func TestCtlPrintsShedAndSlowStart(t *testing.T) {
	var v gateway.UpstreamView
	err := json.Unmarshal([]byte(`{"name":"app",
		"instances":[{"url":"http://a:1","healthy":true,"in_flight":2},
			{"url":"http://b:1","healthy":true,"in_flight":0,"weight":0.25,"ramping_for":"22.5s"}],
		"policies":{"shed":{"sheddable_at":0.5,"default_at":0.9}},
		"live":{"breaker":{"state":"closed","slow_start_share":0.4,"slow_start_left":"18s"},"shed":{"sheddable":31,"default":2}}}`), &v)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printUpstream(&out, v)
	for _, want := range []string{
		"  shed      31 sheddable (at 50% of the limit), 2 default (at 90%)\n",
		"  slow start breaker admits 40% of the calls, all in 18s\n",
		"  instance  http://a:1 healthy, 2 in flight\n",
		"  instance  http://b:1 healthy, 0 in flight, slow start at 25% for 22.5s\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed:\n%s\nwant the line:\n%s", out.String(), want)
		}
	}
	v.Policies.Shed, v.Live.Shed, v.Live.Breaker = nil, nil, gateway.BreakerStatus{State: "closed"}
	out.Reset()
	printUpstream(&out, v)
	if s := out.String(); strings.Contains(s, "shed") || strings.Contains(s, "slow start breaker") {
		t.Errorf("an upstream that neither sheds nor ramps printed:\n%s", s)
	}
}
