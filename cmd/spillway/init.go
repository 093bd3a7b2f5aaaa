package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/internal/server"
)

func newInitCommand() *cobra.Command {
	var (
		upstreams []string
		out       string
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "init --upstream NAME=URL [--upstream NAME=URL ...] [-o spillway.yaml] [--force]",
		Short: "Write a commented starter spillway.yaml",
		Long: `init writes a starter gateway configuration: one upstream per --upstream
flag and a route to each (with one upstream, its route takes every path;
with several, route NAME takes /NAME), the brief's defaults spelled out as
comments to change, and the admin token read from $SPILLWAY_ADMIN_TOKEN.
spillway validate accepts what it writes. It refuses to overwrite a file
unless --force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := starterConfig(upstreams)
			if err != nil {
				return err
			}
			if err := writeNew(out, text, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s; next:\n  spillway validate -c %[1]s\n  SPILLWAY_ADMIN_TOKEN=$(openssl rand -hex 32) spillway serve -c %[1]s\n", out)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&upstreams, "upstream", nil, "NAME=URL of an upstream (repeat for several)")
	cmd.Flags().StringVarP(&out, "output", "o", "spillway.yaml", "the file to write")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the file if it exists")
	_ = cmd.MarkFlagRequired("upstream")
	return cmd
}

// writeNew writes text to path, refusing to replace a file unless force.
func writeNew(path, text string, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: --force replaces it", path)
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, text)
	return errors.Join(err, f.Close())
}

// upstreamName is config's rule for names.
var upstreamName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// starterConfig returns the starter file for flags, each NAME=URL.
func starterConfig(flags []string) (string, error) {
	var b strings.Builder
	b.WriteString(starterHead)
	var names []string
	for _, f := range flags {
		name, raw, ok := strings.Cut(f, "=")
		if !ok || !upstreamName.MatchString(name) {
			return "", fmt.Errorf("--upstream %q: want NAME=URL, NAME of letters, digits, '.', '_' and '-'", f)
		}
		if err := server.CheckInstanceURL(raw); err != nil {
			return "", fmt.Errorf("--upstream %s: %w", name, err)
		}
		if slices.Contains(names, name) {
			return "", fmt.Errorf("--upstream %q: %s is given twice", f, name)
		}
		names = append(names, name)
		// $${ is a literal ${: a URL is never expanded from the environment.
		fmt.Fprintf(&b, "  %s:\n    instances: [%s]\n", yamlQuote(name), yamlQuote(strings.ReplaceAll(raw, "${", "$${")))
	}
	b.WriteString(starterRoutes)
	for _, name := range names {
		prefix := "/" + name
		if len(names) == 1 {
			prefix = "/"
		}
		fmt.Fprintf(&b, "  - name: %s\n    match: {path_prefix: %s}\n    upstream: %[1]s\n", yamlQuote(name), prefix)
	}
	b.WriteString(starterTail)
	return b.String(), nil
}

// plainName matches a name that YAML reads as a string without quotes,
// unless it is one of yamlWords.
var plainName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`)

// yamlWords are the plain scalars a YAML 1.1 reader takes for a boolean or
// a null.
var yamlWords = []string{"y", "n", "yes", "no", "true", "false", "on", "off", "null"}

// yamlQuote returns s as a YAML scalar that reads back as the string s:
// plain when it can be, double-quoted (as JSON writes strings) otherwise.
func yamlQuote(s string) string {
	if plainName.MatchString(s) && !slices.Contains(yamlWords, strings.ToLower(s)) {
		return s
	}
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

const starterHead = `# spillway.yaml, written by spillway init. Check it, then run it:
#   spillway validate -c spillway.yaml
#   SPILLWAY_ADMIN_TOKEN=$(openssl rand -hex 32) spillway serve -c spillway.yaml
# Every key and its default: docs/configuration.md; the gateway: docs/gateway.md.
listen: 127.0.0.1:8080                  # the public listener (0.0.0.0:8080 for every interface)
admin:
  listen: 127.0.0.1:9901                # /healthz, /readyz, /metrics, /api/v1/: keep it on loopback
  token: ${SPILLWAY_ADMIN_TOKEN:-}      # changes need it (Authorization: Bearer); empty refuses them all
defaults:                               # every upstream inherits these, then overrides; shown: the defaults
  timeouts: {connect: 2s, attempt: 5s, total: 15s}   # total includes the retries
  # retry:
  #   max_attempts: 3                   # in total, the first call included; only idempotent requests
  #                                     # (or those with an Idempotency-Key) are ever retried
  #   backoff: {initial: 100ms, max: 5s, multiplier: 2, jitter: full}
  #   on: [connect_failure, timeout, reset, 502, 503, 504]
  #   budget: {ratio: 0.2, window: 10s, min_per_second: 10}   # retries <= 20 % of requests
  # breaker:
  #   window: {type: count, size: 100}  # or {type: time, size: 10s}
  #   min_calls: 20                     # before a failure rate is judged
  #   failure_rate: 50%                 # opens at >= 50 % failures
  #   open_for: 30s                     # then half-open; repeated opens back off up to 5m
  #   half_open_probes: 5
  # bulkhead: {max_concurrent: 100, max_waiting: 0}      # 0 waiting: reject at once when full
  # outlier: {consecutive_failures: 5, ejection: 30s, max_ejection: 300s, max_ejected: 50%}
  # health: {path: /healthz, interval: 5s, timeout: 1s} # active checks: none unless set
upstreams:
`

const starterRoutes = `routes:                                 # the first that matches wins
`

const starterTail = `    # fallback:                       # tried in order when the upstream fails
    #   - stale_cache: {ttl: 10s, serve_stale_for: 24h}
    #   - static: {status: 200, headers: {Content-Type: application/json}, body: '{}'}
`
