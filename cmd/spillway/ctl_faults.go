package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/gateway"
)

// faultsCommand is `spillway ctl faults`: the runtime faults in force,
// and its subcommands add, rm and clear.
func (c *ctl) faultsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "faults",
		Short: "The runtime faults in force (GET /api/v1/faults); add, rm and clear change them",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd.Context(), c, http.MethodGet, "/api/v1/faults", nil,
				func(w io.Writer, l struct{ Faults []gateway.Fault }) { printFaults(w, l.Faults) })
		},
	}
	cmd.AddCommand(c.faultsAddCommand(),
		&cobra.Command{
			Use:   "rm ID",
			Short: "Remove one runtime fault (DELETE /api/v1/faults/ID)",
			Args:  args(1, 1),
			RunE: func(cmd *cobra.Command, a []string) error {
				return show(cmd.Context(), c, http.MethodDelete, "/api/v1/faults/"+url.PathEscape(a[0]), nil,
					func(w io.Writer, r struct{ Removed string }) { fmt.Fprintf(w, "fault %s removed\n", r.Removed) })
			},
		},
		&cobra.Command{
			Use:   "clear",
			Short: "The kill switch: remove every runtime fault (DELETE /api/v1/faults)",
			Args:  args(0, 0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return show(cmd.Context(), c, http.MethodDelete, "/api/v1/faults", nil,
					func(w io.Writer, r struct{ Cleared int }) { fmt.Fprintf(w, "%d fault(s) removed\n", r.Cleared) })
			},
		})
	return cmd
}

func (c *ctl) faultsAddCommand() *cobra.Command {
	var route, delay, abort, expires string
	cmd := &cobra.Command{
		Use:   "add --route R [--delay 50%:2s] [--abort 10%:503] --expires-in 10m",
		Short: "Add a runtime fault to a route, for at most an hour (POST /api/v1/faults)",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := faultSpec(route, delay, abort, expires)
			if err != nil {
				return &exitError{2, err}
			}
			return show(cmd.Context(), c, http.MethodPost, "/api/v1/faults", spec,
				func(w io.Writer, f gateway.Fault) { printFaults(w, []gateway.Fault{f}) })
		},
	}
	cmd.Flags().StringVar(&route, "route", "", "the route's name")
	cmd.Flags().StringVar(&delay, "delay", "", "PERCENT:DURATION, e.g. 50%:2s: delay that share of the attempts")
	cmd.Flags().StringVar(&abort, "abort", "", "PERCENT:STATUS, e.g. 10%:503: answer that share of the attempts")
	cmd.Flags().StringVar(&expires, "expires-in", "", "how long the fault lasts, at most 1h (required)")
	return cmd
}

// faultSpec turns the flags of `faults add` into the body of POST
// /api/v1/faults; the gateway validates the values.
func faultSpec(route, delay, abort, expires string) (gateway.FaultSpec, error) {
	s := gateway.FaultSpec{Route: route, ExpiresIn: expires}
	if delay != "" {
		p, d, err := percentPair("--delay", delay)
		if err != nil {
			return s, err
		}
		s.Delay = &gateway.FaultDelaySpec{Percent: &p, Duration: d}
	}
	if abort != "" {
		p, st, err := percentPair("--abort", abort)
		if err != nil {
			return s, err
		}
		n, err := strconv.Atoi(st)
		if err != nil {
			return s, fmt.Errorf("--abort %q: %q is not a status", abort, st)
		}
		s.Abort = &gateway.FaultAbortSpec{Percent: &p, Status: n}
	}
	return s, nil
}

// percentPair splits PERCENT:VALUE (the % is optional).
func percentPair(flag, v string) (float64, string, error) {
	pct, rest, ok := strings.Cut(v, ":")
	p, err := strconv.ParseFloat(strings.TrimSuffix(pct, "%"), 64)
	if !ok || err != nil {
		return 0, "", fmt.Errorf("%s %q: want PERCENT:VALUE, such as 50%%:2s or 10%%:503", flag, v)
	}
	return p, rest, nil
}

// faultEventLine is a fault event: the action, each fault's id and route,
// who and how.
func faultEventLine(e gateway.FaultEvent) string {
	faults := make([]string, len(e.Faults))
	for i, f := range e.Faults {
		faults[i] = f.ID + " (route " + f.Route + ")"
	}
	return fmt.Sprintf("%s %s by %s (%s)", e.Action, strings.Join(faults, ", "), e.Who, e.Call)
}

func printFaults(w io.Writer, fs []gateway.Fault) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "no runtime fault")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROUTE\tDELAY\tABORT\tEXPIRES IN\tBY")
	for _, f := range fs {
		delay, abort := "-", "-"
		if d := f.Delay; d != nil && d.Percent != nil {
			delay = fmt.Sprintf("%g%% %s", *d.Percent, d.Duration)
		}
		if a := f.Abort; a != nil && a.Percent != nil {
			abort = fmt.Sprintf("%g%% %d", *a.Percent, a.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Route, delay, abort, time.Until(f.ExpiresAt).Round(time.Second), f.Who)
	}
	_ = tw.Flush()
}
