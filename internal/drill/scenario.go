package drill

import (
	"strings"
	"time"
)

// Phase names.
const (
	PhaseHealthy  = "healthy"
	PhaseFault    = "fault"
	PhaseRecovery = "recovery"
)

// faultKind is what the fault proxy does to the upstream during a fault.
type faultKind int

const (
	faultOutage    faultKind = iota // the proxy is down: connections refused, open ones reset
	faultBlackhole                  // connections accepted, requests never answered
	faultLatency                    // every answer delayed
	faultErrors                     // every request answered 503
)

// scenario is one --scenario: its fault, its timeline as fractions of the
// drill's duration, and the expectations judged when none is given.
type scenario struct {
	name  string
	about string
	fault faultKind
	// healthy and faulty are the fractions of the duration that the
	// healthy and the fault phases take; recovery takes the rest.
	healthy, faulty float64
	// flapping turns the fault on and off every Options.FlapEvery during
	// the fault phase.
	flapping bool
	expects  []string
}

var scenarios = []scenario{
	{name: "outage", fault: faultOutage, healthy: 0.2, faulty: 0.5,
		about:   "every instance refuses connections (open ones are reset)",
		expects: []string{"time_to_open<=10s", "amplification<=1.5", "time_to_recover<=60s"}},
	{name: "blackhole", fault: faultBlackhole, healthy: 0.2, faulty: 0.5,
		about:   "every instance accepts connections and never answers",
		expects: []string{"time_to_open<=30s", "amplification<=1.5", "time_to_recover<=60s"}},
	{name: "latency", fault: faultLatency, healthy: 0.2, faulty: 0.5,
		about:   "every answer comes late (--latency, default twice the attempt timeout)",
		expects: []string{"time_to_open<=30s", "amplification<=1.5", "time_to_recover<=60s"}},
	{name: "errors", fault: faultErrors, healthy: 0.2, faulty: 0.5,
		about:   "every instance answers 503",
		expects: []string{"time_to_open<=10s", "amplification<=1.5", "time_to_recover<=60s"}},
	{name: "flapping", fault: faultOutage, healthy: 0.2, faulty: 0.5, flapping: true,
		about:   "the outage comes and goes every --flap-every during the fault phase",
		expects: []string{"amplification<=1.5", "time_to_recover<=60s"}},
	{name: "recovery", fault: faultOutage, healthy: 0.1, faulty: 0.3,
		about:   "an outage early, then a long recovery phase that times the way back",
		expects: []string{"time_to_open<=10s", "time_to_recover<=60s"}},
}

func findScenario(name string) (*scenario, bool) {
	for i := range scenarios {
		if scenarios[i].name == name {
			return &scenarios[i], true
		}
	}
	return nil, false
}

// ScenarioNames lists the scenarios, for messages and help.
func ScenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// DefaultExpects returns the expectations judged when a drill of
// scenario gives none.
func DefaultExpects(scenario string) []string {
	s, ok := findScenario(scenario)
	if !ok {
		return nil
	}
	return s.expects
}

// timeline returns the scenario's phases over d.
func (s *scenario) timeline(d time.Duration) []Phase {
	faultStart := time.Duration(float64(d) * s.healthy).Round(time.Millisecond)
	faultEnd := faultStart + time.Duration(float64(d)*s.faulty).Round(time.Millisecond)
	return []Phase{
		{Name: PhaseHealthy, Start: 0, End: faultStart},
		{Name: PhaseFault, Start: faultStart, End: faultEnd},
		{Name: PhaseRecovery, Start: faultEnd, End: d},
	}
}

// describe is the scenario's line in the help.
func (s *scenario) describe() string { return s.name + ": " + s.about }

// ScenarioHelp describes every scenario, one per line.
func ScenarioHelp() string {
	lines := make([]string, len(scenarios))
	for i := range scenarios {
		lines[i] = "  " + scenarios[i].describe() + "; default --expect " + strings.Join(scenarios[i].expects, " ")
	}
	return strings.Join(lines, "\n")
}
