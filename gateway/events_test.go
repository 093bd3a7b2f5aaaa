package gateway_test

import (
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
