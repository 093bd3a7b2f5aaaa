package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/internal/drill"
)

// reportOptions are spillway report's flags.
type reportOptions struct {
	json, html string
}

// newReportCommand re-renders a saved `spillway drill --json` report as
// drill --html does. Hidden: an operator's tool beside drill, documented
// in docs/drills.md rather than in the command list.
func newReportCommand() *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report --json FILE --html OUT",
		Short: "Render a saved spillway drill --json report as the HTML report",
		Long: `report reads a report that spillway drill --json wrote and writes the
HTML report that spillway drill --html would have written: one
self-contained page, its charts drawn in SVG. "-" reads standard input or
writes standard output.

Exit status 2 when FILE cannot be read or is not a drill report.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd.InOrStdin(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.json, "json", "", "the report spillway drill --json wrote (- for standard input)")
	cmd.Flags().StringVar(&o.html, "html", "", "the HTML file to write (- for standard output)")
	_ = cmd.MarkFlagRequired("json")
	_ = cmd.MarkFlagRequired("html")
	return cmd
}

func runReport(stdin io.Reader, stdout io.Writer, o reportOptions) error {
	r, err := readReport(stdin, o.json)
	if err != nil {
		return &exitError{2, err}
	}
	// Rendered whole before anything is written: a failure leaves no
	// half-written page behind.
	var page bytes.Buffer
	if err := drill.WriteHTML(&page, r); err != nil {
		return err
	}
	if o.html == "-" {
		_, err = stdout.Write(page.Bytes())
		return err
	}
	return os.WriteFile(o.html, page.Bytes(), 0o644)
}

// readReport decodes the report in file (stdin for "-"): one JSON object
// with a scenario, as drill --json writes it; fields it does not know are
// left out, so that a newer drill's report still renders.
func readReport(stdin io.Reader, file string) (*drill.Report, error) {
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	var r drill.Report
	d := json.NewDecoder(in)
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: not a spillway drill --json report: %w", file, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: not a spillway drill --json report: more than one JSON value", file)
	}
	if r.Scenario == "" {
		return nil, fmt.Errorf("%s: not a spillway drill --json report: no scenario", file)
	}
	return &r, nil
}
