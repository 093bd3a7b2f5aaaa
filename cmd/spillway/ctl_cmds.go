package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/gateway"
)

// callCommand is a subcommand without arguments that calls method path
// and prints the answer.
func callCommand[T any](c *ctl, use, short, method, path string, human func(io.Writer, T)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short + " (" + method + " " + path + ")",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd.Context(), c, method, path, nil, human)
		},
	}
}

func (c *ctl) upstreamsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "upstreams [NAME]",
		Short: "Every upstream's effective policies and live figures, or one's (GET /api/v1/upstreams[/NAME])",
		Args:  args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 1 {
				return show(cmd.Context(), c, http.MethodGet, upstreamPath(a[0], ""), nil, printUpstream)
			}
			return show(cmd.Context(), c, http.MethodGet, "/api/v1/upstreams", nil,
				func(w io.Writer, l struct{ Upstreams []gateway.UpstreamView }) {
					for _, v := range l.Upstreams {
						printUpstream(w, v)
					}
				})
		},
	}
}

// breakerStates maps ctl's verbs to the API's states.
var breakerStates = map[string]string{
	"open": "forced_open", "close": "closed", "disable": "disabled", "metrics-only": "metrics_only", "auto": "auto",
}

func (c *ctl) breakerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "breaker open|close|disable|metrics-only|auto NAME",
		Short: "Force an upstream's breaker open, close it, disable it, keep metrics only, or back to automatic",
		Args:  verbArgs(2, "open", "close", "disable", "metrics-only", "auto"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return show(cmd.Context(), c, http.MethodPost, upstreamPath(a[1], "/breaker"), map[string]string{"state": breakerStates[a[0]]}, printUpstream)
		},
	}
}

func (c *ctl) bulkheadCommand() *cobra.Command {
	var waiting int
	cmd := &cobra.Command{
		Use:   "bulkhead resize NAME N [--waiting M]",
		Short: "Resize an upstream's bulkhead to N concurrent calls (and M waiting)",
		Args:  verbArgs(3, "resize"),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := strconv.Atoi(a[2])
			if err != nil {
				return &exitError{2, fmt.Errorf("bulkhead resize: N %q is not a number", a[2])}
			}
			b := map[string]any{"max_concurrent": n}
			if cmd.Flags().Changed("waiting") {
				b["max_waiting"] = waiting
			}
			return show(cmd.Context(), c, http.MethodPatch, upstreamPath(a[1], ""), map[string]any{"bulkhead": b}, printUpstream)
		},
	}
	cmd.Flags().IntVar(&waiting, "waiting", 0, "callers allowed to wait for a slot (bulkhead.max_waiting)")
	return cmd
}

func (c *ctl) setCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME KEY=VALUE...",
		Short: "Change an upstream's keys, spelled as in the file (breaker.failure_rate=30% timeouts.attempt=1s)",
		Args:  args(2, -1),
		RunE: func(cmd *cobra.Command, a []string) error {
			body, err := patchBody(a[1:])
			if err != nil {
				return &exitError{2, err}
			}
			return show(cmd.Context(), c, http.MethodPatch, upstreamPath(a[0], ""), body, printUpstream)
		},
	}
}

// patchBody turns KEY=VALUE pairs, keys dotted as in the file, into the
// nested object PATCH takes. A value that is JSON (50, true, ["a"]) is
// sent as such, any other (30%, 1s) as a string.
func patchBody(pairs []string) (map[string]any, error) {
	body := map[string]any{}
	for _, p := range pairs {
		key, val, ok := strings.Cut(p, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE, such as breaker.failure_rate=30%%", p)
		}
		var v any
		if json.Unmarshal([]byte(val), &v) != nil {
			v = val
		}
		parts := strings.Split(key, ".")
		m := body
		for i, part := range parts[:len(parts)-1] {
			next, ok := m[part].(map[string]any)
			if !ok {
				if _, taken := m[part]; taken {
					return nil, fmt.Errorf("%s is set and also has keys under it", strings.Join(parts[:i+1], "."))
				}
				next = map[string]any{}
				m[part] = next
			}
			m = next
		}
		last := parts[len(parts)-1]
		if _, taken := m[last]; taken {
			return nil, fmt.Errorf("%s is given twice", key)
		}
		m[last] = v
	}
	return body, nil
}

func (c *ctl) instanceCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "instance eject|restore NAME URL",
		Short: "Take an upstream's instance out of the balancing by hand, or back",
		Args:  verbArgs(3, "eject", "restore"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return show(cmd.Context(), c, http.MethodPost, upstreamPath(a[1], "/instances"),
				map[string]string{"url": a[2], "action": a[0]}, printUpstream)
		},
	}
}

func (c *ctl) routeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "route enable|disable NAME",
		Short: "Switch an optional route off (it answers its default) or on",
		Args:  verbArgs(2, "enable", "disable"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return show(cmd.Context(), c, http.MethodPatch, "/api/v1/routes/"+url.PathEscape(a[1]),
				map[string]bool{"enabled": a[0] == "enable"}, func(w io.Writer, r gateway.RouteView) {
					printRoutes(w, struct{ Routes []gateway.RouteView }{[]gateway.RouteView{r}})
				})
		},
	}
}

func (c *ctl) overridesCommand() *cobra.Command {
	var clear bool
	cmd := &cobra.Command{
		Use:   "overrides [--clear]",
		Short: "The runtime changes in force; --clear drops them all, the file's configuration applied again",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clear {
				return show(cmd.Context(), c, http.MethodDelete, "/api/v1/overrides", nil, printCleared)
			}
			return show(cmd.Context(), c, http.MethodGet, "/api/v1/overrides", nil,
				func(w io.Writer, l struct{ Overrides []gateway.Override }) { printOverrides(w, l.Overrides) })
		},
	}
	cmd.Flags().BoolVar(&clear, "clear", false, "drop every override (DELETE /api/v1/overrides)")
	return cmd
}

// upstreamPath is /api/v1/upstreams/NAME then tail.
func upstreamPath(name, tail string) string {
	return "/api/v1/upstreams/" + url.PathEscape(name) + tail
}
