// Package drill runs a chaos drill against a gateway (spillway drill): it
// puts a fault proxy between the gateway and one upstream, drives
// open-loop load at a fixed rate, plays a scenario's timeline (healthy,
// fault, recovery), measures what the clients saw and judges it against
// the operator's expectations.
//
// This file holds the report: what a drill measured, in the shape of the
// brief's `spillway drill --json` contract, and the per-second series the
// HTML report draws.
package drill

import "time"

// Report is the outcome of one drill. Its JSON encoding is the brief's
// `spillway drill --json` contract (pass, scenario, checks, metrics); the
// other fields are added freely.
type Report struct {
	Pass     bool    `json:"pass"`
	Scenario string  `json:"scenario"`
	Checks   []Check `json:"checks"`
	Metrics  Metrics `json:"metrics"`

	Upstream string        `json:"upstream"`
	Route    string        `json:"route,omitempty"`
	Rate     float64       `json:"rate"`     // requests per second sent
	Duration time.Duration `json:"duration"` // the whole drill, nanoseconds in JSON
	Started  time.Time     `json:"started"`
	// Phases are the scenario's timeline, in order, as offsets from Started.
	Phases []Phase `json:"phases"`
	// Series has one sample per second of the drill, in order.
	Series []Sample `json:"series"`
}

// Check is one --expect judged.
type Check struct {
	Expect string  `json:"expect"` // as written: "availability>=99.5%"
	Value  float64 `json:"value"`  // the measured value, in the expectation's unit; -1 when Never
	Pass   bool    `json:"pass"`
	// Never is true when the check is on a time that never came (the
	// breaker never opened, the upstream never recovered): it fails.
	Never bool `json:"never,omitempty"`
}

// Metrics are what the clients saw over the whole drill.
type Metrics struct {
	Requests int `json:"requests"` // client requests answered (or failed)
	// Availability is the percentage of requests answered 2xx/3xx/4xx by
	// the upstream or by a fallback; FallbackShare the percentage answered
	// by a fallback (counted apart: they are in Availability too).
	Availability  float64 `json:"availability"`
	FallbackShare float64 `json:"fallback_share"`
	// ErrorRate is the percentage of requests that failed; ErrorsByReason
	// counts them by Spillway-Reason (or "status_5xx", "transport").
	ErrorRate      float64        `json:"error_rate"`
	ErrorsByReason map[string]int `json:"errors_by_reason"`
	P50ms          float64        `json:"p50_ms"`
	P99ms          float64        `json:"p99_ms"`
	MaxMs          float64        `json:"max_ms"`
	// Amplification is the upstream attempts divided by the client
	// requests (1 when nothing is retried).
	Amplification    float64 `json:"amplification"`
	UpstreamAttempts int     `json:"upstream_attempts"`
	// TimeToOpenMs is from the fault's start to the breaker's opening, -1
	// when it never opened; TimeToRecoverMs from the fault's end to the
	// first second whose availability is back at the healthy phase's
	// (and the breaker closed), -1 when it never recovered.
	TimeToOpenMs    float64 `json:"time_to_open_ms"`
	TimeToRecoverMs float64 `json:"time_to_recover_ms"`
	// QueueBacklog is the async route's pending jobs at the end (0 for a
	// synchronous route).
	QueueBacklog int `json:"queue_backlog"`
	// QueueBacklogMax is the most pending jobs seen during the drill.
	QueueBacklogMax int `json:"queue_backlog_max"`
}

// Phase is a stretch of the timeline: "healthy", "fault" or "recovery".
type Phase struct {
	Name  string        `json:"name"`
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
}

// Sample is one second of the drill, for the charts.
type Sample struct {
	At        time.Duration  `json:"at"` // offset from Started
	Requests  int            `json:"requests"`
	OK        int            `json:"ok"`        // answered by the upstream
	Fallbacks int            `json:"fallbacks"` // answered by a fallback
	Errors    map[string]int `json:"errors"`    // failed, by reason
	P50ms     float64        `json:"p50_ms"`
	P99ms     float64        `json:"p99_ms"`
	MaxMs     float64        `json:"max_ms"`
	// Breaker is the upstream's breaker state at the end of the second
	// ("closed", "open", "half_open", ...).
	Breaker string `json:"breaker"`
	// QueueBacklog is the async route's pending jobs at the end of the
	// second (0 for a synchronous route).
	QueueBacklog int `json:"queue_backlog"`
}
