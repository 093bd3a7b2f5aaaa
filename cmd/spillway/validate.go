package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/internal/server"
)

func newValidateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a gateway configuration file and print every problem in it",
		Long: `validate loads a gateway configuration exactly as serve would (${VAR}
expanded from the environment, defaults merged, every key checked), builds
every upstream's policies, pool and routes with serve's constructors (without
listening or starting anything), and prints
every problem as FILE:LINE:COL: message, warnings as
FILE:LINE:COL: warning: message, or "FILE: ok". It exits with status 1 when
the file has an error; warnings alone do not fail it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(cmd.OutOrStdout(), file)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "the configuration file (YAML)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// runValidate prints the problems of file to w and returns an error when
// there is at least one error (not a warning).
func runValidate(w io.Writer, file string) error {
	_, warnings, err := loadAndPrint(w, file)
	if err != nil {
		return err
	}
	if len(warnings) == 0 {
		fmt.Fprintf(w, "%s: ok\n", file)
	} else {
		fmt.Fprintf(w, "%s: ok, %d warning(s)\n", file, len(warnings))
	}
	return nil
}

// loadAndPrint loads and checks file as serve would and prints its errors
// and warnings to w, one a line as FILE:LINE:COL: message. It returns an
// error when the file has at least one error (not a warning).
func loadAndPrint(w io.Writer, file string) (*config.Config, []config.Warning, error) {
	cfg, warnings, err := server.LoadAndCheck(file)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
	} else if err != nil {
		return nil, nil, err
	}
	for _, wn := range warnings {
		fmt.Fprintf(w, "%s:%d:%d: warning: %s\n", wn.File, wn.Line, wn.Col, wn.Msg)
	}
	switch {
	case len(errs) == 1:
		return nil, nil, fmt.Errorf("%s: 1 error", file)
	case len(errs) > 1:
		return nil, nil, fmt.Errorf("%s: %d errors", file, len(errs))
	}
	return cfg, warnings, nil
}
