package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/internal/drill"
)

// drillOptions are spillway drill's flags beyond drill.Options.
type drillOptions struct {
	drill.Options
	json bool
	html string
}

func newDrillCommand() *cobra.Command {
	var o drillOptions
	cmd := &cobra.Command{
		Use:   "drill -c FILE --scenario S --upstream NAME --rate R --duration D [--expect EXPR ...]",
		Short: "Rehearse a failure of one upstream and judge what the clients saw",
		Long: `drill starts the gateway of FILE in process on loopback (or, with --gateway
and --admin, targets a running one on loopback), puts a fault proxy
(toxiproxy) in front of every instance of --upstream, sends open-loop load
at --rate requests per second through the route of that upstream (--route,
--path) for --duration, and plays the scenario's timeline: healthy (20%),
fault (50%), recovery (30%; recovery: 10%, 30%, 60%).

Scenarios:
` + drill.ScenarioHelp() + `

It measures availability (fallbacks counted apart), the error rate by
reason, p50/p99/max latency, the time until the breaker opened, retry
amplification (upstream attempts / client requests), the time to recover
after the fault, the async queue's backlog; prints a live progress line on
stderr, then a verdict table (or --json) against every --expect, like
'availability>=99.5%', 'p99<=250ms', 'time_to_open<2s', 'amplification<=1.2'.

Exit status 0 when every expectation holds, 1 when one fails (or the drill
could not run), 2 on bad input (nothing was sent). See docs/drills.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrill(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.File, "config", "c", "", "the gateway's configuration file (YAML)")
	f.StringVar(&o.Scenario, "scenario", "", "outage, blackhole, latency, errors, flapping or recovery")
	f.StringVar(&o.Upstream, "upstream", "", "the upstream to fail")
	f.StringVar(&o.Route, "route", "", "the route to send the load through (default: the first route of --upstream)")
	f.StringVar(&o.Path, "path", "", "the request path (default: the route's path or path_prefix)")
	f.Float64Var(&o.Rate, "rate", 50, "requests per second, sent at a fixed pace whatever the answers take")
	f.DurationVar(&o.Duration, "duration", 30*time.Second, "the drill's length, every phase included")
	f.StringArrayVar(&o.Expects, "expect", nil, "an expectation, METRIC OP VALUE (repeatable; default: the scenario's)")
	f.DurationVar(&o.Latency, "latency", 0, "the latency scenario's delay (default: twice the upstream's attempt timeout)")
	f.DurationVar(&o.FlapEvery, "flap-every", 2*time.Second, "the flapping scenario's period: the fault turns on or off this often")
	f.StringVar(&o.Gateway, "gateway", "", "a running gateway's public URL on loopback, instead of starting one")
	f.StringVar(&o.Admin, "admin", "", "the running gateway's admin URL on loopback (with --gateway)")
	f.StringVar(&o.Token, "token", "", "the running gateway's admin token (with --gateway): repointing instances needs it")
	f.BoolVar(&o.json, "json", false, "print the report as one JSON object")
	f.StringVar(&o.html, "html", "", "write the report as a self-contained HTML file")
	// A flag missing or malformed is bad input, exit 2 like the rest
	// (drill.Run names a missing -c, --scenario or --upstream).
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{2, err} })
	return cmd
}

func runDrill(cmd *cobra.Command, o drillOptions) error {
	o.Progress = cmd.ErrOrStderr()
	r, err := drill.Run(cmd.Context(), o.Options)
	var bad *drill.InputError
	if errors.As(err, &bad) {
		return &exitError{2, err}
	}
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = drill.PrintVerdict(out, r)
	}
	if err != nil {
		return err
	}
	if o.html != "" {
		if err := writeHTML(o.html, r); err != nil {
			return err
		}
	}
	if !r.Pass {
		return &exitError{1, errors.New("drill failed: an expectation does not hold")}
	}
	return nil
}

func writeHTML(file string, r *drill.Report) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--html: %w", cerr)
		}
	}()
	if err := drill.WriteHTML(f, r); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}
