package config

import (
	"reflect"
	"testing"
	"time"
)

// TestFaultDecodes: percentages as 5, 5% or 0.5 (half a percent), the
// delay and the status as written, headers off unless written.
func TestFaultDecodes(t *testing.T) {
	cfg, _, err := Parse("t.yaml", []byte(`upstreams:
  a: {instances: [http://127.0.0.1:1]}
routes:
  - {name: r, upstream: a, fault: {delay: {percent: 5%, duration: 500ms}, abort: {percent: 0.5, status: 503}, headers: true}}
  - {name: s, upstream: a, fault: {abort: {percent: 100, status: 429}}}
  - {name: u, upstream: a}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*Fault{
		{Delay: &FaultDelay{Percent: 5, Duration: 500 * time.Millisecond}, Abort: &FaultAbort{Percent: 0.5, Status: 503}, Headers: true},
		{Abort: &FaultAbort{Percent: 100, Status: 429}},
		nil,
	} {
		if got := cfg.Routes[i].Fault; !reflect.DeepEqual(got, want) {
			t.Errorf("routes[%d].fault = %+v, want %+v", i, got, want)
		}
	}
}
