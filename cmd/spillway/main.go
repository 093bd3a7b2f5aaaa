// Command spillway is Spillway's command line: `spillway serve -c FILE`
// runs the gateway, `spillway validate -c FILE` checks a configuration file
// and prints every problem as FILE:LINE:COL, `spillway demo` shows the
// policies at work against simulated downstreams, `spillway version` (or
// `spillway --version`) prints the build. The operations kit (`drill`,
// `map`) joins it in a later release.
package main

import (
	"context"
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
		os.Exit(1)
	}
}

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
	return root
}
