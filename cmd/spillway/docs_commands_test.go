package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// shellFence is a ```sh block of a Markdown file.
var shellFence = regexp.MustCompile("(?s)```sh\n(.*?)```")

// docCommands are the `spillway ...` command lines of the ```sh blocks of
// file: continuation lines joined, comments dropped.
func docCommands(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, m := range shellFence.FindAllStringSubmatch(string(b), -1) {
		text := strings.ReplaceAll(m[1], "\\\n", " ")
		for line := range strings.SplitSeq(text, "\n") {
			if i := strings.Index(line, " # "); i >= 0 {
				line = line[:i]
			}
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "spillway ") {
				cmds = append(cmds, line)
			}
		}
	}
	return cmds
}

// shellWords splits a command line as a shell does for the quoting the
// docs use: words apart by spaces, '...' and "..." kept whole.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	quote, in := rune(0), false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestDocsCommandsParse parses every `spillway ...` line of the runbooks,
// the failure scenarios and the Grafana guide with the real command tree:
// the subcommand exists, its flags are known, its arguments (the verbs of
// breaker, bulkhead, instance, route included) are accepted. Nothing is
// run. Every runbook must show at least one spillway command.
func TestDocsCommandsParse(t *testing.T) {
	files, err := filepath.Glob("../../docs/runbooks/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no runbook in docs/runbooks")
	}
	files = append(files, "../../docs/failure-scenarios.md", "../../docs/grafana.md")
	for _, f := range files {
		cmds := docCommands(t, f)
		if len(cmds) == 0 && filepath.Base(f) != "README.md" && filepath.Base(f) != "grafana.md" {
			t.Errorf("%s shows no spillway command", f)
		}
		for _, line := range cmds {
			if err := parseCommandLine(shellWords(line)[1:]); err != nil {
				t.Errorf("%s: %q: %v", filepath.Base(f), line, err)
			}
		}
	}
}

// parseCommandLine finds the subcommand of args in a new root command and
// checks its flags and arguments, as Execute does before running it.
func parseCommandLine(args []string) error {
	root := newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	// Execute refuses an unknown subcommand only at the root: a parent
	// without Args (ctl) would take it as an argument.
	if cmd.HasSubCommands() && cmd.Args == nil && len(cmd.Flags().Args()) > 0 {
		return fmt.Errorf("spillway %s has no subcommand %q", strings.TrimPrefix(cmd.CommandPath(), "spillway "), cmd.Flags().Arg(0))
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return err
	}
	return cmd.ValidateRequiredFlags()
}
