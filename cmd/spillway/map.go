package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/depmap"
)

// mapOptions are spillway map's flags.
type mapOptions struct {
	file, format, admin, token string
}

func newMapCommand() *cobra.Command {
	var o mapOptions
	cmd := &cobra.Command{
		Use:   "map -c FILE --format mermaid|dot|json",
		Short: "Draw a configuration's dependency map: routes, upstreams, instances, fallbacks",
		Long: `map loads and checks FILE as validate does and prints its dependency map:
every route (in match order) to its upstream, every upstream to its
instances, and each route's fallback chain as dashed edges (a replica
upstream, a stale cache, a static answer, an optional route's default).
Async routes are marked. --format mermaid renders on GitHub, dot feeds
Graphviz (dot -Tsvg), json is for scripts.

With --admin URL, map reads the running gateway's /api/v1/status and colours
every upstream by its breaker's state and every instance by its health
(green: closed or healthy, yellow: half_open, metrics_only or disabled, red:
open, forced_open, unhealthy or ejected; json: a "state" field).

Exit status 2 when FILE is invalid (its problems printed as validate prints
them, on stderr), 1 when the admin API cannot be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMap(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.Flags().StringVarP(&o.file, "config", "c", "", "the configuration file (YAML)")
	cmd.Flags().StringVar(&o.format, "format", "mermaid", "mermaid, dot or json")
	cmd.Flags().StringVar(&o.admin, "admin", "", "a running gateway's admin URL (e.g. http://127.0.0.1:9901): colour the map by live state")
	cmd.Flags().StringVar(&o.token, "token", "", "the admin token, sent as a Bearer token with --admin")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func runMap(ctx context.Context, stdout, stderr io.Writer, o mapOptions) error {
	if !slices.Contains(depmap.Formats, o.format) {
		return &exitError{2, fmt.Errorf("--format %q: want %s", o.format, strings.Join(depmap.Formats, ", "))}
	}
	cfg, _, err := loadAndPrint(stderr, o.file)
	if err != nil {
		return &exitError{2, err}
	}
	g := depmap.Build(cfg)
	if o.admin != "" {
		st, err := readStatus(ctx, o.admin, o.token)
		if err != nil {
			return err
		}
		g.Colour(st)
	}
	return g.Write(stdout, o.format)
}

// readStatus reads GET /api/v1/status of the admin listener at base.
func readStatus(ctx context.Context, base, token string) (gateway.Status, error) {
	var st gateway.Status
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/v1/status", nil)
	if err != nil {
		return st, fmt.Errorf("--admin: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("reading the gateway's status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("reading the gateway's status: %s answered %s", req.URL, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("reading the gateway's status: %w", err)
	}
	return st, nil
}
