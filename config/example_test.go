package config_test

import (
	"fmt"
	"os"

	"github.com/spillway-dev/spillway/config"
)

func ExampleParse() {
	yaml := `
defaults:
  timeouts: {attempt: 2s}
upstreams:
  catalog:
    instances: [http://127.0.0.1:9001]
    breaker: {min_calls: 200}
routes:
  - name: catalog
    match: {path_prefix: /catalog}
    upstream: catalog
`
	cfg, warnings, err := config.Parse("spillway.yaml", []byte(yaml), os.LookupEnv)
	if err != nil {
		fmt.Println(err)
		return
	}
	u := cfg.Upstreams["catalog"]
	fmt.Println(u.Timeouts.Connect, u.Timeouts.Attempt, u.Timeouts.Total, u.Breaker.FailureRate)
	for _, w := range warnings {
		fmt.Println(w)
	}
	// Output:
	// 2s 2s 15s 0.5
	// spillway.yaml:7:26: upstreams.catalog.breaker: min_calls (200) is larger than the count window (100 calls): the breaker can never open
}

func ExampleErrors() {
	_, _, err := config.Parse("spillway.yaml", []byte("listen: 127.0.0.1:8080\nupstreams:\n  catalog: {instances: [http://127.0.0.1:9001], balanse: random}\n"), nil)
	fmt.Println(err)
	// Output:
	// spillway.yaml:3:49: unknown key "balanse" in upstreams.catalog; did you mean "balance"?
}
