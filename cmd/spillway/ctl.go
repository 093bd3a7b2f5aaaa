package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/internal/adminclient"
)

const (
	// defaultAdmin is the admin listener serve starts by default.
	defaultAdmin = "http://127.0.0.1:9901"
	// ctlTimeout bounds every call but the event stream: an operator
	// waiting on a wedged gateway learns it in seconds.
	ctlTimeout = 10 * time.Second
)

// ctl is what every ctl subcommand shares: where the admin API is, the
// token, the output mode and the streams.
type ctl struct {
	admin, token string
	json         bool
	stdout       io.Writer
	client       *http.Client
}

func newCtlCommand() *cobra.Command {
	c := &ctl{client: &http.Client{}}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Inspect and steer a running gateway through its admin API",
		Long: `ctl calls a running gateway's admin API (` + defaultAdmin + ` by default,
or $SPILLWAY_ADMIN, or --admin URL) with the admin token (--token or
$SPILLWAY_ADMIN_TOKEN; status needs none). It prints a readable summary, or
the API's JSON as is with --json. Exit status: 0 done, 1 the gateway refused
or could not be reached (a refused change prints "field: message"), 2 a
usage error.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			c.stdout = cmd.OutOrStdout()
			// Read here, not as the flag's default: help would print it.
			c.token = cmp.Or(c.token, os.Getenv("SPILLWAY_ADMIN_TOKEN"))
			return c.checkAdmin()
		},
	}
	cmd.PersistentFlags().StringVar(&c.admin, "admin", cmp.Or(os.Getenv("SPILLWAY_ADMIN"), defaultAdmin), "the admin listener's URL ($SPILLWAY_ADMIN)")
	cmd.PersistentFlags().StringVar(&c.token, "token", "", "the admin token (default $SPILLWAY_ADMIN_TOKEN)")
	cmd.PersistentFlags().BoolVar(&c.json, "json", false, "print the API's JSON answer as is")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{2, err} })
	cmd.AddCommand(
		callCommand(c, "status", "Upstreams with their breaker state, instances and queues", http.MethodGet, "/api/v1/status", printStatus),
		c.upstreamsCommand(),
		callCommand(c, "routes", "Every route with its fallback chain, in match order", http.MethodGet, "/api/v1/routes", printRoutes),
		c.breakerCommand(), c.bulkheadCommand(), c.setCommand(), c.instanceCommand(),
		c.routeCommand(), c.overridesCommand(), c.faultsCommand(), c.eventsCommand(),
		callCommand(c, "reload", "Re-read the configuration file and apply it, as SIGHUP does", http.MethodPost, "/api/v1/reload", printReload))
	return cmd
}

// checkAdmin refuses an admin URL that is not http(s): the token must not
// go anywhere else.
func (c *ctl) checkAdmin() error {
	u, err := url.Parse(c.admin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &exitError{2, fmt.Errorf("--admin %q: want an http:// or https:// URL, such as %s", c.admin, defaultAdmin)}
	}
	c.admin = strings.TrimSuffix(c.admin, "/")
	return nil
}

// args is cobra.ExactArgs / RangeArgs whose refusal is a usage error
// (exit 2).
func args(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) < lo || hi >= 0 && len(a) > hi {
			return &exitError{2, fmt.Errorf("usage: spillway ctl %s", cmd.Use)}
		}
		return nil
	}
}

// verbArgs checks a subcommand of n arguments whose first is one of
// verbs (breaker open NAME), a usage error otherwise.
func verbArgs(n int, verbs ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := args(n, n)(cmd, a); err != nil {
			return err
		}
		if !slices.Contains(verbs, a[0]) {
			return &exitError{2, fmt.Errorf("%s %q: want %s", cmd.Name(), a[0], strings.Join(verbs, ", "))}
		}
		return nil
	}
}

// apiError is an error answer of the admin API.
type apiError struct {
	code           int
	field, message string
}

func (e *apiError) Error() string {
	switch {
	case e.code == http.StatusUnauthorized:
		return "the admin API refused the token (401): pass --token or set SPILLWAY_ADMIN_TOKEN to the gateway's admin.token"
	case e.code == http.StatusForbidden:
		return "the admin API refused the call (403): " + e.message + "; set admin.token on the gateway, then pass --token or SPILLWAY_ADMIN_TOKEN"
	case e.field != "":
		return e.field + ": " + e.message
	}
	return e.message
}

// call sends method path with body (marshalled to JSON unless nil) and
// returns the answer's body, or the API's refusal as an *apiError.
func (c *ctl) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	b, err := c.api().Call(ctx, method, path, body)
	if err != nil {
		return nil, c.failure(err)
	}
	return b, nil
}

// failure is err as ctl says it: an *apiError for a refusal, the flag to
// check when the admin API was out of reach.
func (c *ctl) failure(err error) error {
	var ae *adminclient.Error
	if errors.As(err, &ae) {
		return &apiError{code: ae.Code, field: ae.Field, message: ae.Message}
	}
	return c.unreachable(err)
}

// send sends one request with the token and hdr.
func (c *ctl) send(ctx context.Context, method, path string, body any, hdr http.Header) (*http.Response, error) {
	resp, err := c.api().Send(ctx, method, path, body, hdr)
	if err != nil {
		return nil, c.unreachable(err)
	}
	return resp, nil
}

func (c *ctl) api() *adminclient.Client {
	return &adminclient.Client{URL: c.admin, Token: c.token, HTTP: c.client}
}

// unreachable says which flag names the admin API a request could not
// reach. The client's error names the URL, never the header: the token
// stays out of it.
func (c *ctl) unreachable(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("cannot reach the admin API at %s (--admin, $SPILLWAY_ADMIN): %w", c.admin, ue.Err)
}

// show calls the API and prints its answer: as is with --json, else
// decoded into a T and printed by human.
func show[T any](ctx context.Context, c *ctl, method, path string, body any, human func(io.Writer, T)) error {
	b, err := c.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	if c.json {
		_, err = fmt.Fprintln(c.stdout, strings.TrimSpace(string(b)))
		return err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%s %s: the answer is not what ctl expects: %w", method, path, err)
	}
	human(c.stdout, v)
	return nil
}
