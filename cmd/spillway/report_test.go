package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outageJSON is a drill --json report: internal/drill's outage fixture.
const outageJSON = "../../internal/drill/testdata/outage.json"

func runReportCommand(t *testing.T, stdin string, args ...string) (stdout string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"report"}, args...))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// A saved report renders to the file --html names, and to stdout for "-",
// the same page.
func TestReportRendersASavedReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.html")
	if _, err := runReportCommand(t, "", "--json", outageJSON, "--html", out); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "Spillway drill: outage", `class="verdict pass">PASS`, `<svg id="chart-breaker"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	saved, err := os.ReadFile(outageJSON)
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := runReportCommand(t, string(saved), "--json", "-", "--html", "-")
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(page) {
		t.Error("stdin to stdout renders another page than file to file")
	}
}

// What is not a drill report exits 2 and writes nothing.
func TestReportBadInputExits2(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "report.html")
	for name, input := range map[string]string{
		"not JSON":     "scenario: outage\n",
		"no scenario":  `{"pass": true, "upstream": "x"}`,
		"two values":   `{"scenario": "outage"} {"scenario": "outage"}`,
		"wrong shapes": `{"scenario": "outage", "series": {"at": 1}}`,
		"empty":        "",
	} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		if err := os.WriteFile(file, []byte(input), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := runReportCommand(t, "", "--json", file, "--html", out)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "not a spillway drill --json report") {
			t.Errorf("%s: got %v, want exit status 2 naming the file as no report", name, err)
		}
	}
	_, err := runReportCommand(t, "", "--json", filepath.Join(dir, "missing.json"), "--html", out)
	if ee := (*exitError)(nil); !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("a missing file: got %v, want exit status 2", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a page was written for bad input: %v", err)
	}
	if _, err := runReportCommand(t, "", "--json", outageJSON); err == nil || !strings.Contains(err.Error(), `"html"`) {
		t.Errorf("without --html: got %v, want the flag required", err)
	}
}
