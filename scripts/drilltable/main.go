// Command drilltable prints a saved `spillway drill --json` report (read on
// standard input) as the verdict table that the drill prints without
// --json, with the drill's own printer. scripts/drill-evidence.sh keeps
// both views of one run: a drill prints one or the other.
//
//	spillway drill ... --json | tee outage.json | go run ./scripts/drilltable
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spillway-dev/spillway/internal/drill"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "drilltable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var r drill.Report
	if err := json.NewDecoder(in).Decode(&r); err != nil {
		return fmt.Errorf("reading a drill report: %w", err)
	}
	if r.Scenario == "" {
		return fmt.Errorf("not a drill report: no scenario")
	}
	return drill.PrintVerdict(out, &r)
}
