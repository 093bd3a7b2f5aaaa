package gateway

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
)

// TestFaultDraw: each rule fires when its roll is under its percentage,
// delays add up to the bound, the first abort wins, the request's own
// fault always fires, and an expired rule draws nothing.
func TestFaultDraw(t *testing.T) {
	now := time.Unix(1000, 0)
	rolls := []float64{}
	s := &faultSet{expiring: true, now: func() time.Time { return now }, roll: func() float64 {
		r := rolls[0]
		rolls = rolls[1:]
		return r
	}, rules: []faultRule{
		{delayPct: 50, delay: 40 * time.Second, abortPct: 10, status: 503},
		{delayPct: 50, delay: 40 * time.Second, abortPct: 10, status: 502, expires: now.Add(time.Minute)},
	}}
	for _, tt := range []struct {
		rolls  []float64
		hdrD   time.Duration
		hdrA   int
		delay  time.Duration
		status int
	}{
		{[]float64{49.9, 9.9, 0}, 0, 0, config.MaxFaultDelay, 503},
		{[]float64{50, 10, 50, 9.9}, 0, 0, 0, 502},
		{[]float64{99, 99, 99, 99}, time.Second, 429, time.Second, 429},
		{[]float64{0, 99, 99, 99}, 0, 429, 40 * time.Second, 429},
	} {
		rolls = tt.rolls
		if d, st := s.draw(tt.hdrD, tt.hdrA); d != tt.delay || st != tt.status || len(rolls) != 0 {
			t.Errorf("rolls %v: draw = %s, %d, want %s, %d", tt.rolls, d, st, tt.delay, tt.status)
		}
	}
	now = now.Add(time.Minute)
	rolls = []float64{99, 99}
	if d, st := s.draw(0, 0); d != 0 || st != 0 || len(rolls) != 0 {
		t.Errorf("after the expiry: %s, %d, rolls left %v", d, st, rolls)
	}
}
