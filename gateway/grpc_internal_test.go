package gateway

import (
	"testing"
	"time"
)

func TestParseGRPCTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "50m": 50 * time.Millisecond,
		"7u": 7 * time.Microsecond, "99999999n": 99999999, "99999999M": 99999999 * time.Minute,
	} {
		if got, ok := parseGRPCTimeout(v); !ok || got != want {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "m", "5", "5x", "0m", "-5m", "+5m", "123456789m", "99999999H"} {
		if got, ok := parseGRPCTimeout(v); ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, want refused", v, got)
		}
	}
}

func TestPercentEncode(t *testing.T) {
	if got, want := percentEncode("breaker_open: 100% \"x\" é\n"), "breaker_open: 100%25 \"x\" %C3%A9%0A"; got != want {
		t.Errorf("percentEncode = %q, want %q", got, want)
	}
}
