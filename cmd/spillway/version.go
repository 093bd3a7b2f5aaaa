package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// `make build` sets it from `git describe`. Without it, the version comes
// from what the go command recorded in the binary (buildVersion).
var version = ""

func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return fmt.Sprintf("spillway %s %s %s/%s", buildVersion(version, bi), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// noVersion is what a build that recorded nothing reports: the go command
// stamps no VCS information outside a git checkout, in a git worktree, or
// with -buildvcs=false.
const noVersion = "(devel: no version or VCS revision recorded; build with make build)"

// buildVersion returns set when not empty; else the main module's version
// the go command recorded (v1.2.3 for go install ...@v1.2.3, a
// pseudo-version for a build in a git checkout); else the VCS revision
// (12 hex digits, "-dirty" when the checkout had changes); else noVersion.
// "(devel)" alone says nothing about what was built.
func buildVersion(set string, bi *debug.BuildInfo) string {
	if set != "" {
		return set
	}
	if bi == nil {
		return noVersion
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return noVersion
	}
	return rev[:min(12, len(rev))] + dirty
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of spillway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}
