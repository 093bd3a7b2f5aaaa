package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// manyRoutes is a configuration of n routes to one upstream, each its own
// path_prefix (/svc00000 …), as bench/gwbench -routes serves.
func manyRoutes(n int) string {
	var b strings.Builder
	b.WriteString("upstreams:\n  app:\n    instances: [http://127.0.0.1:9]\nroutes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%05d\n    match: {path_prefix: /svc%05d}\n    upstream: app\n", i, i)
	}
	return b.String()
}

// BenchmarkApplyRoutes: a reload of a configuration of 10,000 routes, the
// route index rebuilt with them: "apply" times Gateway.Apply of a parsed
// configuration (alternating between two parsed copies, so that every one
// builds a new table), "parse+apply" also parses and validates the YAML,
// as a reload of the file does.
func BenchmarkApplyRoutes(b *testing.B) {
	yaml := []byte(manyRoutes(10000))
	parse := func(b *testing.B) *config.Config {
		cfg, _, err := config.Parse("routes.yaml", yaml, func(string) (string, bool) { return "", false })
		if err != nil {
			b.Fatal(err)
		}
		return cfg
	}
	cfgs := [2]*config.Config{parse(b), parse(b)}
	gw, err := gateway.New(cfgs[0], gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	b.Run("apply", func(b *testing.B) {
		for i := 1; b.Loop(); i++ {
			if _, err := gw.Apply(cfgs[i%2]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse+apply", func(b *testing.B) {
		for b.Loop() {
			if _, err := gw.Apply(parse(b)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
