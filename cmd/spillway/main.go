// Command spillway is Spillway's command line: `spillway demo` shows every
// policy at work against a simulated downstream, `spillway version` prints
// the build. The gateway (`serve`, `validate`) and the operations kit
// (`drill`, `map`) join it in later releases.
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
	}
	root.AddCommand(newVersionCommand(), newDemoCommand())
	root.AddCommand(newValidateCommand())
	root.AddCommand(newServeCommand())
	return root
}
