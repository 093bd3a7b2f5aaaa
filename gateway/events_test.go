package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

func ids(evs []gateway.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestEventBusReadResumesWhereTheReaderLeft(t *testing.T) {
	b := gateway.NewEventBus(4)
	for range 3 {
		b.Publish("breaker", nil)
	}
	evs, lost := b.Read(1, nil)
	if got := ids(evs); lost != 0 || len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("Read(1) = %v lost %d, want [2 3] lost 0", got, lost)
	}
	evs, lost = b.Read(3, nil)
	if len(evs) != 0 || lost != 0 {
		t.Fatalf("Read(last) = %v lost %d, want nothing", ids(evs), lost)
	}
	evs, _ = b.Read(0, make([]gateway.Event, 0, 2))
	if got := ids(evs); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("Read(0) with room for 2 = %v, want [1 2]", got)
	}
}

func TestEventBusReaderBehindTheRingIsToldHowManyItLost(t *testing.T) {
	b := gateway.NewEventBus(4)
	for range 10 {
		b.Publish("rejection", nil)
	}
	evs, lost := b.Read(2, nil)
	if got := ids(evs); lost != 4 || len(got) != 4 || got[0] != 7 || got[3] != 10 {
		t.Fatalf("Read(2) = %v lost %d, want [7 8 9 10] lost 4", got, lost)
	}
	if _, lost := b.Read(0, nil); lost != 6 {
		t.Fatalf("Read(0) lost %d, want 6", lost)
	}
	if evs, lost := b.Read(99, nil); len(evs) != 0 || lost != 0 {
		t.Fatalf("Read(future) = %v lost %d, want nothing", ids(evs), lost)
	}
}

// A reader that never reads must not slow publishing: ten times the ring
// published with one attached finishes under a deadline, and the reader
// learns what it lost.
func TestEventBusStalledReaderDoesNotBlockPublish(t *testing.T) {
	b := gateway.NewEventBus(gateway.DefaultEventRing)
	wait := b.Wait(0) // a subscriber that waits and never reads
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 * gateway.DefaultEventRing {
			b.Publish("breaker", nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing blocked behind a stalled reader")
	}
	<-wait
	evs, lost := b.Read(0, nil)
	if lost != 9*gateway.DefaultEventRing || len(evs) != gateway.DefaultEventRing {
		t.Fatalf("stalled reader: %d events, lost %d; want %d, lost %d",
			len(evs), lost, gateway.DefaultEventRing, 9*gateway.DefaultEventRing)
	}
}

func TestEventBusWaitWakesOnPublishAndClose(t *testing.T) {
	b := gateway.NewEventBus(0)
	w := b.Wait(0)
	select {
	case <-w:
		t.Fatal("Wait returned before any event")
	default:
	}
	b.Publish("config", map[string]string{"x": "y"})
	<-w
	w = b.Wait(1)
	b.Close()
	<-w
	if !b.Closed() || b.Publish("config", nil) != 0 || b.Last() != 1 {
		t.Fatal("a closed bus must refuse events and keep its last id")
	}
	<-b.Wait(1)
}

// The gateway publishes its decisions: the breaker that opens, the calls
// it then refuses (sampled: events_internal_test checks the folding), and
// the reload after them.
func TestGatewayPublishesTransitionsRejectionsAndReloads(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(500)
	vars := map[string]string{"A": a.URL, "B": b.URL}
	h := start(t, parse(t, fmt.Sprintf(reloadYAML, "50%"), vars))
	for range 3 { // two failures open the breaker, the third is refused
		h.do(t, "GET", "/kept", nil, "")
	}
	if err := h.gw.Reload(parse(t, fmt.Sprintf(reloadYAML, "60%"), vars)); err != nil {
		t.Fatal(err)
	}
	evs, lost := h.gw.Events().Read(0, nil)
	if lost != 0 || len(evs) != 3 {
		t.Fatalf("events = %+v (lost %d), want breaker, rejection, config", evs, lost)
	}
	if got, want := evs[0].Data, (gateway.BreakerEvent{Upstream: "kept", From: "closed", To: "open"}); evs[0].Kind != gateway.EventBreaker || got != want {
		t.Errorf("first event %s %+v, want breaker %+v", evs[0].Kind, got, want)
	}
	if got, want := evs[1].Data, (gateway.RejectionEvent{Upstream: "kept", Reason: "breaker_open", Count: 1}); evs[1].Kind != gateway.EventRejection || got != want {
		t.Errorf("second event %s %+v, want rejection %+v", evs[1].Kind, got, want)
	}
	if cs, ok := evs[2].Data.(gateway.Changes); evs[2].Kind != gateway.EventConfig || !ok || len(cs.Applied) == 0 {
		t.Errorf("third event %s %+v, want the reload's changes", evs[2].Kind, evs[2].Data)
	}
	h.gw.Close()
	if !h.gw.Events().Closed() {
		t.Error("Close left the event bus open")
	}
}

// A runtime change and the clearing of the overrides are on the stream, with
// who made them.
func TestGatewayPublishesOverrides(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	vars := map[string]string{"A": a.URL, "B": b.URL}
	h := start(t, parse(t, fmt.Sprintf(reloadYAML, "50%"), vars))
	if _, err := h.gw.SetBreaker(operator, "kept", "forced_open"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.ClearOverrides(operator); err != nil {
		t.Fatal(err)
	}
	evs, _ := h.gw.Events().Read(0, nil)
	var kinds []string
	var ov gateway.Override
	var cleared gateway.OverridesCleared
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
		switch d := e.Data.(type) {
		case gateway.Override:
			ov = d
		case gateway.OverridesCleared:
			cleared = d
		}
	}
	if ov.Who != "admin" || ov.Upstream != "kept" || cleared.Who != "admin" || cleared.Cleared != 1 {
		t.Fatalf("events %v: override %+v, cleared %+v", kinds, ov, cleared)
	}
}
