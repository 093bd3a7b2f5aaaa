// Command spillway is Spillway's command line: `spillway serve -c FILE`
// runs the gateway (`spillway serve --upstream URL` with no file),
// `spillway init --upstream NAME=URL` writes a starter file,
// `spillway validate -c FILE` checks a configuration file
// and prints every problem as FILE:LINE:COL, `spillway demo` shows the
// policies at work against simulated downstreams, `spillway map -c FILE`
// draws a configuration's dependency map, `spillway ctl` steers a running
// gateway through its admin API, `spillway drill` rehearses an upstream's
// failure against a configuration and judges what the clients saw,
// `spillway version` (or `spillway --version`) prints the build.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "spillway:", err)
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		os.Exit(code)
	}
}

// exitError is an error that exits with code rather than 1 (map: 2 on bad
// input, as drill).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "spillway",
		Short:         "Keep a service answering when what it depends on is slow, flaky or down",
		SilenceUsage:  true,
		SilenceErrors: true,
		// spillway --version prints what spillway version prints.
		Version: versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newVersionCommand(), newDemoCommand())
	root.AddCommand(newValidateCommand())
	root.AddCommand(newServeCommand())
	root.AddCommand(newMapCommand(), newInitCommand())
	root.AddCommand(newCtlCommand())
	root.AddCommand(newDrillCommand())
	root.AddCommand(newReportCommand())
	return root
}
