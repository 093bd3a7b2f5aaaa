package queue

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// crashChildEnv makes the test binary act as a process that enqueues
// jobs until it is killed (see TestCrashKeepsAcknowledgedJobs).
const crashChildEnv = "SPILLWAY_QUEUE_CRASH_CHILD_DIR"

// TestCrashKeepsAcknowledgedJobs kills (SIGKILL) a process while it
// enqueues, then reopens its store: every job whose Enqueue returned is
// there. With the default sync interval the filestore writes each message
// to its file (the OS page cache) before the ack, so a process crash loses
// nothing; only a power loss can lose the last interval.
func TestCrashKeepsAcknowledgedJobs(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(exe, "-test.run=^TestCrashKeepsAcknowledgedJobs$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() && len(acked) < 300 {
			if line := sc.Text(); len(line) == 32 {
				acked = append(acked, line)
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if len(acked) < 300 {
			t.Fatalf("round %d: child acknowledged only %d jobs", round, len(acked))
		}
		q, err := Open(t.Context(), Config{Dir: dir, Prefix: "CRASH"})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range acked {
			if st, err := q.Status(t.Context(), id); err != nil || st.State != StateQueued {
				t.Fatalf("round %d: acknowledged job %s after kill -9: %+v %v", round, id, st, err)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// crashChild enqueues jobs and prints each acknowledged id, forever.
func crashChild(dir string) {
	q, err := Open(context.Background(), Config{Dir: dir, Prefix: "CRASH"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		id, _, err := q.Enqueue(context.Background(), "orders", Message{Data: make([]byte, 256)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(w, id)
		_ = w.Flush()
	}
	os.Exit(3)
}
