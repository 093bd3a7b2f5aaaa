package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
)

// TestCtlFaults: add, list, rm and clear against a real gateway.
func TestCtlFaults(t *testing.T) {
	adm, _ := ctlGateway(t)
	ctx := context.Background()
	out, errText, code := ctlRun(t, ctx, adm, "faults", "add", "--route", "app", "--delay", "50%:2s", "--abort", "10%:503", "--expires-in", "10m")
	id := regexp.MustCompile(`(?m)^([0-9a-f]{16})\s+app\s+50% 2s\s+10% 503\s+(9m5\d|10m0)s\s+admin`).FindStringSubmatch(out)
	if code != 0 || id == nil {
		t.Fatalf("faults add: exit %d %q\n%s", code, errText, out)
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"faults"}, 0, id[1] + "  app"},
		{[]string{"faults", "add", "--route", "app", "--abort", "10%:503"}, 1, "expires_in"},
		{[]string{"faults", "add", "--route", "app", "--abort", "ten:503", "--expires-in", "1m"}, 2, "want PERCENT:VALUE"},
		{[]string{"faults", "add", "--route", "nope", "--abort", "10:503", "--expires-in", "1m"}, 1, "unknown"},
		{[]string{"faults", "rm", id[1]}, 0, "fault " + id[1] + " removed"},
		{[]string{"faults", "add", "--route", "app", "--abort", "1:500", "--expires-in", "1m"}, 0, "1% 500"},
		{[]string{"faults", "clear"}, 0, "1 fault(s) removed"},
		{[]string{"faults"}, 0, "no runtime fault"},
	}
	for _, s := range steps {
		out, errText, code := ctlRun(t, ctx, adm, s.args...)
		if code != s.code || !strings.Contains(out+errText, s.want) {
			t.Errorf("ctl %s: exit %d, %q\n%s\nwant exit %d and %q", strings.Join(s.args, " "), code, errText, out, s.code, s.want)
		}
	}
}

func TestFaultEventText(t *testing.T) {
	data := `{"who":"ops","call":"DELETE /api/v1/faults","action":"clear","faults":[{"id":"0123456789abcdef","route":"app"},{"id":"fedcba9876543210","route":"recs"}]}`
	want := "clear 0123456789abcdef (route app), fedcba9876543210 (route recs) by ops (DELETE /api/v1/faults)"
	if got := eventText(gateway.EventFault, []byte(data)); got != want {
		t.Errorf("eventText = %q, want %q", got, want)
	}
}
