package pool_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// logLevels returns "LEVEL msg" for each line a JSON logger wrote to buf.
func logLevels(t *testing.T, buf *spillwaytest.Buffer) []string {
	t.Helper()
	var out []string
	dec := json.NewDecoder(strings.NewReader(buf.String()))
	for dec.More() {
		var l struct{ Level, Msg string }
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Level+" "+l.Msg)
	}
	return out
}

// An instance that fails is a Warn; one that is back is an Info: an
// operator alerting on Warn is not paged for a recovery.
func TestTransitionsAreLoggedWarnWhenLostInfoWhenBack(t *testing.T) {
	t.Run("ejection", func(t *testing.T) {
		buf := &spillwaytest.Buffer{}
		clock := spillway.NewManualClock(0)
		p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(1, 0), Logger: slog.New(slog.NewJSONHandler(buf, nil))})
		fail(p.Instances()[0], 3)
		clock.Advance(10 * time.Second)
		if p.Status()[0].Ejected {
			t.Fatal("still ejected")
		}
		got := strings.Join(logLevels(t, buf), "; ")
		if want := "WARN spillway: instance ejected; INFO spillway: instance back from ejection"; got != want {
			t.Errorf("log: %s\nwant %s", got, want)
		}
	})
	t.Run("health", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			buf := &spillwaytest.Buffer{}
			f := newFakeChecks()
			f.set("b:2", true)
			p := mustNew(t, threeURLs, pool.Options{Health: health, Check: f.check, Rand: func() float64 { return 0.5 },
				Logger: slog.New(slog.NewJSONHandler(buf, nil))})
			p.Start()
			defer p.Close()
			synctest.Wait()
			for range health.UnhealthyAfter - 1 {
				time.Sleep(time.Second)
				synctest.Wait()
			}
			f.set("b:2", false)
			for range health.HealthyAfter {
				time.Sleep(time.Second)
				synctest.Wait()
			}
			got := strings.Join(logLevels(t, buf), "; ")
			if want := "WARN spillway: instance unhealthy; INFO spillway: instance healthy"; got != want {
				t.Errorf("log: %s\nwant %s", got, want)
			}
		})
	})
}
