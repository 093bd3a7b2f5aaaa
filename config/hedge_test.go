package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/retry"
)

func TestHedgeKeys(t *testing.T) {
	for hedge, want := range map[string]config.Hedge{
		`{}`:                     {Quantile: 0.95, Max: 1},
		`{delay: p99}`:           {Quantile: 0.99, Max: 1},
		`{delay: p99.9, max: 2}`: {Quantile: 0.999, Max: 2},
		`{delay: 25ms}`:          {Delay: 25 * time.Millisecond, Max: 1},
	} {
		cfg, _, err := loadIn(t, t.TempDir(), "upstreams:\n  secure:\n    instances: [http://127.0.0.1:9443]\n    hedge: "+hedge+"\n"+tlsRoutes)
		if err != nil {
			t.Fatalf("hedge: %s: %v", hedge, err)
		}
		u := cfg.Upstreams["secure"]
		if got := *u.Hedge; got != want {
			t.Errorf("hedge: %s = %+v, want %+v", hedge, got, want)
		}
		hc, ok := u.HedgeConfig(retry.MustNewBudget(retry.BudgetConfig{}))
		if !ok || hc.Delay != want.Delay || hc.Quantile != want.Quantile || hc.Max != want.Max || hc.Budget == nil || hc.Name != "secure" {
			t.Errorf("HedgeConfig = %+v, %v", hc, ok)
		}
	}
	cfg, _, err := loadIn(t, t.TempDir(), "upstreams:\n  secure:\n    instances: [http://127.0.0.1:9443]\n"+tlsRoutes)
	if err != nil || cfg.Upstreams["secure"].Hedge != nil {
		t.Fatalf("no hedge: written, got %+v, %v", cfg.Upstreams["secure"].Hedge, err)
	}
}

func TestHedgeKeysRefused(t *testing.T) {
	for hedge, want := range map[string]string{
		`{delay: p100}`: `spillway.yaml:4:20: upstreams.secure.hedge.delay: p100 is not a quantile`,
		`{delay: p10}`:  `upstreams.secure.hedge.delay: p10 is not a quantile`,
		`{delay: fast}`: `spillway.yaml:4:20: upstreams.secure.hedge.delay: invalid duration "fast"`,
		`{delay: 0}`:    `upstreams.secure.hedge.delay: must be more than 0`,
		`{max: 0}`:      `spillway.yaml:4:18: upstreams.secure.hedge.max: 0 is less than 1`,
	} {
		_, _, err := loadIn(t, t.TempDir(), "upstreams:\n  secure:\n    instances: [http://127.0.0.1:9443]\n    hedge: "+hedge+"\n"+tlsRoutes)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("hedge: %s: got %v, want %q", hedge, err, want)
		}
	}
}
