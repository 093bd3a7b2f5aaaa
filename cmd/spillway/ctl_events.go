package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/adminclient"
)

// eventsRetry is the wait before reconnecting a dropped event stream, then
// doubled up to eventsRetryMax.
const (
	eventsRetry    = 500 * time.Millisecond
	eventsRetryMax = 10 * time.Second
)

func (c *ctl) eventsCommand() *cobra.Command {
	var since int64
	cmd := &cobra.Command{
		Use:   "events [--since ID]",
		Short: "Follow the gateway's events, one line each, until Ctrl-C (GET /api/v1/events)",
		Long: `events follows the gateway's event stream: breaker transitions, sampled
rejections, instance transitions, configuration changes and runtime
overrides, one line each (with --json, each event's JSON). A dropped
connection is opened again, resuming after the last event printed
(Last-Event-ID). --since ID starts after event ID (0: every event the
gateway still holds) rather than with the next one.`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.follow(cmd.Context(), cmd.ErrOrStderr(), since)
		},
	}
	cmd.Flags().Int64Var(&since, "since", -1, "start after this event id (0: every event still held)")
	return cmd
}

// follow prints the event stream until ctx ends, reconnecting after a
// dropped connection (or a gateway restarting) with the last id seen. A
// refusal other than 503 (a bad token) ends it.
func (c *ctl) follow(ctx context.Context, stderr io.Writer, since int64) error {
	last, wait := "", eventsRetry
	if since >= 0 {
		last = strconv.FormatInt(since, 10)
	}
	for {
		got, err := c.stream(ctx, &last)
		if ctx.Err() != nil {
			return nil
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.code != http.StatusServiceUnavailable {
			return err
		}
		if got {
			wait = eventsRetry
		}
		reason := "the stream ended"
		if err != nil {
			reason = err.Error()
		}
		fmt.Fprintf(stderr, "spillway: events: %s; reconnecting in %s\n", reason, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, eventsRetryMax)
	}
}

// stream reads one connection of the event stream, printing each event
// and keeping its id in last; got reports whether it printed any.
func (c *ctl) stream(ctx context.Context, last *string) (got bool, err error) {
	hdr := http.Header{"Accept": {"text/event-stream"}}
	if *last != "" {
		hdr.Set("Last-Event-ID", *last)
	}
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/events", nil, hdr)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if err := adminclient.Refused(resp); err != nil {
		return false, c.failure(err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, adminclient.MaxAnswer)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				c.printEvent(data)
				got = true
			}
			if id != "" {
				*last = id
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
	return got, sc.Err()
}

// printEvent prints one event's data: as is with --json, else its time,
// kind and fields on one line.
func (c *ctl) printEvent(data string) {
	var e struct {
		Time time.Time       `json:"time"`
		Kind string          `json:"kind"`
		Data json.RawMessage `json:"data"`
		Lost *int64          `json:"lost"`
	}
	if c.json || json.Unmarshal([]byte(data), &e) != nil {
		fmt.Fprintln(c.stdout, data)
		return
	}
	if e.Lost != nil {
		fmt.Fprintf(c.stdout, "lost %d events: ctl fell behind the gateway's ring\n", *e.Lost)
		return
	}
	fmt.Fprintf(c.stdout, "%s %s %s\n", e.Time.Local().Format("15:04:05.000"), e.Kind, eventText(e.Kind, e.Data))
}

// eventText is an event's data on one line: the kinds ctl knows written
// for reading, any other as its fields.
func eventText(kind string, data json.RawMessage) string {
	switch kind {
	case gateway.EventBreaker:
		var b gateway.BreakerEvent
		if json.Unmarshal(data, &b) == nil {
			return fmt.Sprintf("%s %s -> %s", b.Upstream, b.From, b.To)
		}
	case gateway.EventConfig:
		var cs gateway.Changes
		if json.Unmarshal(data, &cs) == nil {
			applied, resets := cs.Lines()
			if l := append(applied, resets...); len(l) > 0 {
				return strings.Join(l, "; ")
			}
			return "no change"
		}
	case gateway.EventOverride:
		var o gateway.Override
		if json.Unmarshal(data, &o) == nil {
			return overrideLine(o)
		}
	case gateway.EventFault:
		var f gateway.FaultEvent
		if json.Unmarshal(data, &f) == nil {
			return faultEventLine(f)
		}
	}
	var fields map[string]any
	if json.Unmarshal(data, &fields) == nil {
		return keyValues(fields)
	}
	return string(data)
}
