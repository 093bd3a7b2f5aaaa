package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRateLimitDecodes: the rate's units, burst's default (the rate's N),
// key's default (client_ip) and header names made canonical.
func TestRateLimitDecodes(t *testing.T) {
	cfg, _, err := Parse("t.yaml", []byte(`upstreams:
  a: {instances: [http://127.0.0.1:1]}
routes:
  - {name: r, upstream: a, rate_limit: {rate: 100/s}}
  - {name: s, upstream: a, rate_limit: {rate: 600/m, burst: 1, key: 'header:x-api-key', max_keys: 50}}
  - {name: u, upstream: a, rate_limit: {rate: 1_000/h, key: route}}
  - {name: v, upstream: a}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*RateLimit{
		{Rate: Rate{N: 100, Per: time.Second}, Burst: 100, Key: "client_ip", MaxKeys: 100_000},
		{Rate: Rate{N: 600, Per: time.Minute}, Burst: 1, Key: "header:X-Api-Key", MaxKeys: 50},
		{Rate: Rate{N: 1000, Per: time.Hour}, Burst: 1000, Key: "route", MaxKeys: 100_000},
		nil,
	} {
		if got := cfg.Routes[i].RateLimit; !reflect.DeepEqual(got, want) {
			t.Errorf("routes[%d].rate_limit = %+v, want %+v", i, got, want)
		}
	}
	if got := cfg.Routes[1].RateLimit.Rate.String(); got != "600/m" {
		t.Errorf("Rate.String = %q, want 600/m", got)
	}
	if name, ok := cfg.Routes[1].RateLimit.Header(); !ok || name != "X-Api-Key" {
		t.Errorf("Header = %q, %v; want X-Api-Key, true", name, ok)
	}
}

// TestRateLimitProblems: each bad value is reported at its FILE:LINE:COL,
// with what would be accepted.
func TestRateLimitProblems(t *testing.T) {
	for _, tc := range []struct{ route, want string }{
		{"{rate: fast}", `t.yaml:4:47: routes[0].rate_limit.rate: "fast" is not a rate: write N/s, N/m or N/h (such as 100/s)`},
		{"{rate: 100/d}", `t.yaml:4:47: routes[0].rate_limit.rate: "100/d" is not a rate: write N/s, N/m or N/h (such as 100/s)`},
		{"{rate: 0/s}", `t.yaml:4:47: routes[0].rate_limit.rate: 0/s admits no request: N must be at least 1 (remove rate_limit: for no limit)`},
		{"{rate: 10/s, key: 'cookie:x'}", `t.yaml:4:58: routes[0].rate_limit.key: "cookie:x" is not one of client_ip, route or header:NAME (such as header:X-Api-Key)`},
		{"{rate: 10/s, key: 'header:'}", `t.yaml:4:58: routes[0].rate_limit.key: "header:" is not one of client_ip, route or header:NAME (such as header:X-Api-Key)`},
		{"{rate: 10/s, burst: 0}", `t.yaml:4:60: routes[0].rate_limit.burst: 0 is less than 1`},
		{"{rate: 10/s, max_keys: -1}", `t.yaml:4:63: routes[0].rate_limit.max_keys: -1 is less than 1`},
		{"{burst: 5}", `t.yaml:4:40: route "r": rate_limit.rate is required`},
		{"{rate: 1/h, burst: 100000000}", `t.yaml:4:59: route "r": rate_limit: burst 100000000 at 1/h takes too long to refill (more than 100 years)`},
		{"{rate: 1/s, rtae: 1}", `t.yaml:4:52: unknown key "rtae" in routes[0].rate_limit; did you mean "rate"?`},
	} {
		yaml := "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - {name: r, upstream: a, rate_limit: " + tc.route + "}\n"
		_, _, err := Parse("t.yaml", []byte(yaml), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rate_limit: %s: got %v\nwant %s", tc.route, err, tc.want)
		}
	}
}

// TestRateLimitWarnsOfIgnoredMaxKeys: max_keys means nothing for one bucket.
func TestRateLimitWarnsOfIgnoredMaxKeys(t *testing.T) {
	_, ws, err := Parse("t.yaml", []byte("upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - {name: r, upstream: a, rate_limit: {rate: 1/s, key: route, max_keys: 5}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`t.yaml:4:74: warning: route "r": rate_limit.max_keys is ignored: key: route has one bucket`}
	if got := problems(ws, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
