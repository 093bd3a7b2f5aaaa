package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
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
	example, _, err := config.Load("../../examples/gateway/spillway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		cmds := docCommands(t, f)
		if len(cmds) == 0 && filepath.Base(f) != "README.md" && filepath.Base(f) != "grafana.md" {
			t.Errorf("%s shows no spillway command", f)
		}
		for _, line := range cmds {
			words := shellWords(line)[1:]
			if err := parseCommandLine(words); err != nil {
				t.Errorf("%s: %q: %v", filepath.Base(f), line, err)
			} else if err := checkOnExample(example, words); err != nil {
				t.Errorf("%s: %q: %v", filepath.Base(f), line, err)
			}
		}
	}
}

// checkOnExample holds a ctl command line to the example file
// (examples/gateway/spillway.yaml), whose names the docs use: the
// upstream or route it names exists, and the change of `set` or
// `bulkhead resize` is one the runtime API accepts (the same decoder and
// validation, config.PatchUpstream).
func checkOnExample(cfg *config.Config, words []string) error {
	if len(words) < 3 || words[0] != "ctl" {
		return nil
	}
	var name string
	var patch map[string]any
	switch words[1] {
	case "upstreams":
		name = words[2]
	case "breaker", "instance", "bulkhead": // VERB NAME ...
		name = words[3]
		if words[1] == "bulkhead" {
			n, _ := strconv.Atoi(words[4])
			patch = map[string]any{"bulkhead": map[string]any{"max_concurrent": n}}
		}
	case "set":
		name = words[2]
		body, err := patchBody(words[3:])
		if err != nil {
			return err
		}
		patch = body
	case "route":
		for _, r := range cfg.Routes {
			if r.Name == words[3] {
				return nil
			}
		}
		return fmt.Errorf("the example file has no route %q", words[3])
	default:
		return nil
	}
	u, ok := cfg.Upstreams[name]
	if !ok {
		return fmt.Errorf("the example file has no upstream %q", name)
	}
	if words[1] == "instance" && !slices.Contains(u.Instances, words[4]) {
		return fmt.Errorf("the example file's upstream %s has no instance %s", name, words[4])
	}
	if patch == nil {
		return nil
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = cfg.PatchUpstream(name, b)
	return err
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
