package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

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
		Use:   "map (-c FILE [--admin URL] | --admin URL) --format mermaid|dot|json",
		Short: "Draw a configuration's dependency map: routes, upstreams, instances, fallbacks",
		Long: `map loads and checks FILE as validate does and prints its dependency map:
every route (in match order) to its upstream, every upstream to its
instances, and each route's fallback chain as dashed edges (a replica
upstream, a stale cache, a static answer, an optional route's default).
Async routes are marked. --format mermaid renders on GitHub, dot feeds
Graphviz (dot -Tsvg), json is for scripts.

With -c FILE --admin URL, map reads the running gateway's /api/v1/status and
colours every upstream by its breaker's state and every instance by its
health (green: closed or healthy, yellow: half_open, metrics_only or
disabled, red: open, forced_open, unhealthy or ejected; json: a "state"
field). With --admin URL and no -c (a gateway run by serve --upstream has no
file), map draws the same graph from the gateway's /api/v1/upstreams and
/api/v1/routes, coloured the same way; a static answer's and a default's
status are not in the API, so those leaves read "static" and "default".
--token (or $SPILLWAY_ADMIN_TOKEN) is sent as a Bearer token.

Exit status 2 when FILE is invalid (its problems printed as validate prints
them, on stderr) or neither -c nor --admin is given, 1 when the admin API
cannot be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMap(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.Flags().StringVarP(&o.file, "config", "c", "", "the configuration file (YAML)")
	cmd.Flags().StringVar(&o.format, "format", "mermaid", "mermaid, dot or json")
	cmd.Flags().StringVar(&o.admin, "admin", "", "a running gateway's admin URL (e.g. http://127.0.0.1:9901): colour the map by live state")
	cmd.Flags().StringVar(&o.token, "token", "", "the admin token, sent as a Bearer token with --admin (default $SPILLWAY_ADMIN_TOKEN)")
	return cmd
}

func runMap(ctx context.Context, stdout, stderr io.Writer, o mapOptions) error {
	if !slices.Contains(depmap.Formats, o.format) {
		return &exitError{2, fmt.Errorf("--format %q: want %s", o.format, strings.Join(depmap.Formats, ", "))}
	}
	if o.file == "" && o.admin == "" {
		return &exitError{2, errors.New("map needs -c FILE, --admin URL, or both")}
	}
	var c *ctl
	if o.admin != "" {
		c = &ctl{admin: o.admin, token: cmp.Or(o.token, os.Getenv("SPILLWAY_ADMIN_TOKEN")), client: &http.Client{}}
		if err := c.checkAdmin(); err != nil {
			return err
		}
	}
	if o.file == "" {
		g, err := liveMap(ctx, c)
		if err != nil {
			return err
		}
		return g.Write(stdout, o.format)
	}
	cfg, _, err := loadAndPrint(stderr, o.file)
	if err != nil {
		return &exitError{2, err}
	}
	g := depmap.Build(cfg)
	if c != nil {
		st, err := get[gateway.Status](ctx, c, "/api/v1/status")
		if err != nil {
			return err
		}
		g.Colour(st)
	}
	return g.Write(stdout, o.format)
}

// liveMap draws the map of the gateway c talks to from its runtime API.
func liveMap(ctx context.Context, c *ctl) (*depmap.Graph, error) {
	ups, err := get[struct{ Upstreams []gateway.UpstreamView }](ctx, c, "/api/v1/upstreams")
	if err != nil {
		return nil, err
	}
	routes, err := get[struct{ Routes []gateway.RouteView }](ctx, c, "/api/v1/routes")
	if err != nil {
		return nil, err
	}
	return depmap.FromAPI(ups.Upstreams, routes.Routes), nil
}

// get reads GET path of the admin API into a T.
func get[T any](ctx context.Context, c *ctl, path string) (T, error) {
	var v T
	b, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("GET %s: %w", path, err)
	}
	return v, nil
}
