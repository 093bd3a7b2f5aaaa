package config

import (
	"errors"
	"strings"
	"testing"
)

const patchBase = `upstreams:
  app:
    instances: [http://127.0.0.1:1]
    bulkhead: {max_concurrent: 10}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`

func TestPatchUpstream(t *testing.T) {
	cfg, _, err := Parse("s.yaml", []byte(patchBase), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.PatchUpstream("app", []byte(`{"bulkhead":{"max_concurrent":50},"breaker":{"failure_rate":"30%"}}`))
	if err != nil {
		t.Fatal(err)
	}
	u := got.Upstreams["app"]
	if u.Bulkhead.MaxConcurrent != 50 || u.Breaker.FailureRate != 0.3 || u.Breaker.MinCalls != 20 {
		t.Errorf("patched: bulkhead %+v, breaker %+v; want max_concurrent 50, failure_rate 0.3, the rest kept", u.Bulkhead, u.Breaker)
	}
	if cfg.Upstreams["app"].Bulkhead.MaxConcurrent != 10 || cfg.Upstreams["app"].Breaker.FailureRate != 0.5 {
		t.Error("PatchUpstream changed the configuration it copied")
	}

	for _, tt := range []struct{ patch, path, msg string }{
		{`{"breaker":{"failure_rate":"300%"}}`, "$.upstreams.app.breaker.failure_rate", "failure_rate"},
		{`{"bulkhead":{"max_concurent":5}}`, "$.upstreams.app.bulkhead.max_concurent", `did you mean "max_concurrent"`},
		{`{"timeouts":{"attempt":"20s"}}`, "$.upstreams.app.timeouts.attempt", "longer than total"},
		{`{"retry":{"max_attempts":"${HOME}"}}`, "$.upstreams.app.retry.max_attempts", "HOME is not set"},
		{`{"bulkhead":`, "", ""},
	} {
		_, err := cfg.PatchUpstream("app", []byte(tt.patch))
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 || tt.path != "" && (es[0].Path != tt.path || !strings.Contains(es[0].Msg, tt.msg)) {
			t.Errorf("PatchUpstream(%s) = %v (%#v), want an error at %s about %q", tt.patch, err, es, tt.path, tt.msg)
		}
	}
	if _, err := cfg.PatchUpstream("nope", []byte(`{}`)); err == nil {
		t.Error("PatchUpstream(nope) accepted")
	}
}
