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
    timeouts: {total: 2s}
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
	// 2s 2s 2s 0.5
	// spillway.yaml:3:23: upstreams.catalog.timeouts: attempt (2s) is not shorter than total (2s): the first attempt can use the whole budget and no retry will ever start
}

func ExampleErrors() {
	_, _, err := config.Parse("spillway.yaml", []byte("listen: 127.0.0.1:8080\nupstreams:\n  catalog: {instances: [http://127.0.0.1:9001], balanse: random}\n"), nil)
	fmt.Println(err)
	// Output:
	// spillway.yaml:3:49: unknown key "balanse" in upstreams.catalog; did you mean "balance"?
}
