package main

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A saved report prints as the drill's table: its header, metrics, every
// check and the verdict.
func TestPrintsTheVerdictTable(t *testing.T) {
	f, err := os.Open("../../internal/drill/testdata/outage.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	if err := run(f, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drill            outage on upstream catalog", "time_to_open     850ms", "EXPECT", "availability>=95%", "verdict  PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// Anything but a drill report is an error, nothing printed.
func TestRefusesWhatIsNotAReport(t *testing.T) {
	for _, in := range []string{"", "[]", `{"pass":true}`} {
		var out strings.Builder
		if err := run(strings.NewReader(in), &out); err == nil || out.Len() > 0 {
			t.Errorf("%q: err %v, printed %q; want an error and nothing printed", in, err, out.String())
		}
	}
}
