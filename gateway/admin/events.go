package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

const (
	// DefaultMaxStreams is Options.MaxStreams' default.
	DefaultMaxStreams = 64
	// heartbeat is how often an idle stream gets a comment line, so that
	// proxies and load balancers between it and its client keep it open.
	heartbeat = 15 * time.Second
	// writeWait is how long one write to a stream may take: a client that
	// reads nothing for that long is dropped (its socket buffers are full).
	writeWait = 2 * heartbeat
	// streamBatch is how many events a stream copies out of the ring at
	// once: its memory, whatever the ring holds.
	streamBatch = 64
)

// events serves GET /api/v1/events: Gateway.Events as server-sent events,
// from the next event published, or from after the id of Last-Event-ID (or
// ?last_event_id=) while the ring still holds what followed it. An event
// is "id: ID", "event: KIND", "data: " and the gateway.Event as JSON, then
// a blank line. A client that falls behind the ring gets "event: lost" with
// data {"lost":N}, N events skipped, and goes on from the oldest event
// held. The stream ends when the client goes, the gateway closes, or the
// listener shuts down (Options.Done).
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	bus := a.g.Events()
	after, resume, err := lastEventID(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !resume {
		after = bus.Last()
	}
	if n := a.streams.Add(1); int(n) > a.maxStreams() {
		a.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable,
			fmt.Sprintf("too many event streams open (%d): close one or try later", a.maxStreams()))
		return
	}
	defer a.streams.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	s := &stream{w: bufio.NewWriter(w), rc: http.NewResponseController(w), after: min(after, bus.Last())}
	if s.flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	buf := make([]gateway.Event, 0, streamBatch)
	for {
		more, err := s.send(bus, buf)
		if err != nil || bus.Closed() && !more {
			return
		}
		if more {
			continue
		}
		select {
		case <-bus.Wait(s.after):
		case <-tick.C:
			if s.comment("heartbeat") != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-a.o.Done:
			return
		}
	}
}

// stream is one client's event stream and its cursor in the ring.
type stream struct {
	w     *bufio.Writer
	rc    *http.ResponseController
	after uint64 // the id of the last event sent (or skipped)
}

// send writes the events after s.after that fit in buf, or the lost event
// first when the ring moved past them, and flushes; more reports that buf
// was filled (there may be more to send).
func (s *stream) send(bus *gateway.EventBus, buf []gateway.Event) (more bool, err error) {
	evs, lost := bus.Read(s.after, buf[:0])
	if lost > 0 {
		s.after += lost
		fmt.Fprintf(s.w, "id: %d\nevent: lost\ndata: {\"lost\":%d}\n\n", s.after, lost)
	}
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			data, _ = json.Marshal(gateway.Event{ID: e.ID, Time: e.Time, Kind: e.Kind, Data: err.Error()})
		}
		fmt.Fprintf(s.w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Kind, data)
		s.after = e.ID
	}
	if lost == 0 && len(evs) == 0 {
		return false, nil
	}
	return len(evs) == cap(buf), s.flush()
}

// comment writes an SSE comment line (ignored by clients) and flushes.
func (s *stream) comment(text string) error {
	fmt.Fprintf(s.w, ": %s\n\n", text)
	return s.flush()
}

// flush sends what is buffered to the client within writeWait.
func (s *stream) flush() error {
	// Not every ResponseWriter has deadlines (httptest's has not): the
	// stream then runs without, which is what it can do.
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWait))
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.rc.Flush()
}

// lastEventID returns the id a client resumes after: the Last-Event-ID
// header (which browsers' EventSource send on reconnecting), else the
// last_event_id query parameter (for a first connection that resumes).
func lastEventID(r *http.Request) (id uint64, ok bool, err error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, false, nil
	}
	id, err = strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("Last-Event-ID / last_event_id %q is not an event id (a decimal number)", v)
	}
	return id, true, nil
}

func (a *api) maxStreams() int {
	if a.o.MaxStreams > 0 {
		return a.o.MaxStreams
	}
	return DefaultMaxStreams
}
