package main

import (
	"bytes"
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
)

const (
	// defaultAdmin is the admin listener serve starts by default.
	defaultAdmin = "http://127.0.0.1:9901"
	// ctlTimeout bounds every call but the event stream: an operator
	// waiting on a wedged gateway learns it in seconds.
	ctlTimeout = 10 * time.Second
	// maxAnswer bounds what ctl reads of one answer.
	maxAnswer = 16 << 20
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
	resp, err := c.send(ctx, method, path, body, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, answerError(resp.StatusCode, resp.Status, b)
	}
	return b, nil
}

// send sends one request with the token and hdr.
func (c *ctl) send(ctx context.Context, method, path string, body any, hdr http.Header) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.admin+path, r)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// The client's error names the URL, never the header: the token
		// stays out of it.
		return nil, fmt.Errorf("cannot reach the admin API at %s (--admin, $SPILLWAY_ADMIN): %w", c.admin, errors.Unwrap(err))
	}
	return resp, nil
}

// answerError turns an error answer into an *apiError.
func answerError(code int, status string, body []byte) error {
	var e struct {
		Error struct{ Field, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		e.Error.Message = "the admin API answered " + status
	}
	return &apiError{code: code, field: e.Error.Field, message: e.Error.Message}
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
