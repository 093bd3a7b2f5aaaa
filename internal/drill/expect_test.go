package drill

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParseExpect(t *testing.T) {
	for _, tc := range []struct {
		in     string
		metric string
		op     string
		value  float64 // in the metric's unit
	}{
		{"availability>=99.5%", "availability", ">=", 99.5},
		{"availability >= 99.5", "availability", ">=", 99.5},
		{"p99<=250ms", "p99_ms", "<=", 250},
		{"p99_ms<250", "p99_ms", "<", 250},
		{"max<0.5s", "max_ms", "<", 500},
		{"p50==3ms", "p50_ms", "==", 3},
		{"time_to_open<2s", "time_to_open_ms", "<", 2000},
		{"time_to_recover_ms<=1500", "time_to_recover_ms", "<=", 1500},
		{"amplification<=1.2", "amplification", "<=", 1.2},
		{"error_rate<1%", "error_rate", "<", 1},
		{"fallback_share>0", "fallback_share", ">", 0},
		{"queue_backlog==0", "queue_backlog", "==", 0},
	} {
		e, err := ParseExpect(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if e.Metric != tc.metric || e.Op != tc.op || e.Value != tc.value {
			t.Errorf("%q: got %s %s %g, want %s %s %g", tc.in, e.Metric, e.Op, e.Value, tc.metric, tc.op, tc.value)
		}
	}
}

func TestParseExpectRefuses(t *testing.T) {
	for _, in := range []string{
		"",
		"availability",
		"availability=99",     // no such operator
		"availability=>99",    // nor this one
		"uptime>=99%",         // unknown metric
		"p99<=250us",          // unknown unit
		"availability>=99ms",  // a time unit on a percentage
		"p99<=5%",             // a percentage on a time
		"amplification<=1.2%", // a unit on a ratio
		"p99<=fast",
		">=99%",
	} {
		_, err := ParseExpect(in)
		var bad *InputError
		if !errors.As(err, &bad) {
			t.Errorf("%q: got %v, want an *InputError", in, err)
		}
	}
	// The value is quoted as written.
	if _, err := ParseExpect("p99<=fast"); err == nil || !strings.Contains(err.Error(), `"fast" is not a number`) {
		t.Errorf("p99<=fast: %v, want the value named", err)
	}
}

func TestVerdict(t *testing.T) {
	m := Metrics{Availability: 99.8, P99ms: 240, Amplification: 1.1, TimeToOpenMs: -1, TimeToRecoverMs: 800}
	exps := func(ss ...string) []Expectation {
		var out []Expectation
		for _, s := range ss {
			e, err := ParseExpect(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	checks, pass := Verdict(exps("availability>=99.5%", "p99<=0.25s", "amplification<=1.2", "time_to_recover<1s"), &m)
	if !pass {
		t.Errorf("every expectation holds, got %+v", checks)
	}
	if checks[1].Value != 0.24 {
		t.Errorf("p99 written in s: value %g, want 0.24 (the unit written)", checks[1].Value)
	}
	// A breaker that never opened fails any expectation on time_to_open,
	// even one that -1 would satisfy.
	checks, pass = Verdict(exps("availability>=99.5%", "time_to_open<=5s"), &m)
	if pass || !checks[0].Pass || checks[1].Pass || !checks[1].Never || checks[1].Value != -1 {
		t.Errorf("time_to_open never: got %+v, pass %v", checks, pass)
	}
	var b strings.Builder
	if err := PrintVerdict(&b, &Report{Checks: checks, Metrics: m}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`time_to_open<=5s +never +FAIL`).MatchString(b.String()) {
		t.Errorf("the verdict table shows a time that never came as:\n%s", b.String())
	}
	checks, pass = Verdict(exps("availability>99.9", "p99<240", "amplification==1.1"), &m)
	if pass || checks[0].Pass || checks[1].Pass || !checks[2].Pass {
		t.Errorf("got %+v, pass %v", checks, pass)
	}
}

// Every scenario's default expectations parse.
func TestDefaultExpectsParse(t *testing.T) {
	for _, name := range ScenarioNames() {
		for _, s := range DefaultExpects(name) {
			if _, err := ParseExpect(s); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
