package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spillway-dev/spillway/internal/natstest"
)

// The cluster harness runs the store as it runs in production, three
// nats-server processes built from the module the e2e tests require,
// clustered over loopback routes, so that a node can be paused with SIGSTOP:
// its sockets stay open and silent, which no in-process server can mimic.

// buildNATSServer builds the nats-server command into dir.
func buildNATSServer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "nats-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	return bin
}

// natsNode is one nats-server process of a cluster.
type natsNode struct {
	name               string
	port, monitor, cls int // client, HTTP monitoring and cluster ports
	cmd                *exec.Cmd
	exited             chan struct{}
}

// url is the node's client URL.
func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// signal sends sig to the process.
func (n *natsNode) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", n.name, sig, err)
	}
}

// startNATSCluster starts n nats-server processes named n1…nN, with
// JetStream in temp dirs, forming cluster "c" on loopback. Each is
// continued and killed when the test ends (and dies with the test process
// however that ends). It returns once every node's monitoring endpoint
// answers: JetStream may still be electing its leaders.
func startNATSCluster(t *testing.T, bin string, n int) []*natsNode {
	t.Helper()
	ports := natstest.FreePorts(t, 3*n)
	nodes := make([]*natsNode, n)
	routes := make([]string, n)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i+1), port: ports[3*i], monitor: ports[3*i+1], cls: ports[3*i+2]}
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", nodes[i].cls)
	}
	for _, node := range nodes {
		dir := t.TempDir()
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {store_dir: %q, max_memory_store: 64MB, max_file_store: 4GB}
cluster {name: c, listen: 127.0.0.1:%d, routes: [%s]}
`, node.name, node.port, node.monitor, filepath.Join(dir, "js"), node.cls, strings.Join(routes, ", "))
		file := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		node.cmd = exec.Command(bin, "-c", file, "-l", filepath.Join(dir, "nats.log"))
		node.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := node.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", node.name, err)
		}
		node.exited = make(chan struct{})
		go func() {
			_ = node.cmd.Wait()
			close(node.exited)
		}()
		t.Cleanup(func() {
			_ = node.cmd.Process.Signal(syscall.SIGCONT)
			_ = node.cmd.Process.Kill()
			<-node.exited
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, "nats.log"))
				t.Logf("%s's log (last 2 KiB):\n%s", node.name, tail(string(b), 2<<10))
			}
		})
	}
	for _, node := range nodes {
		within(t, 10*time.Second, node.name+" monitoring", func() bool {
			_, err := node.monitorJSON(t.Context(), "/varz")
			return err == nil
		})
	}
	return nodes
}

// monitorJSON reads a monitoring endpoint of the node.
func (n *natsNode) monitorJSON(ctx context.Context, path string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", n.monitor, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v map[string]any
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// hasQueueClient reports whether the node has a client connection named
// spillway-queue (the gateway's queue), read from its /connz.
func (n *natsNode) hasQueueClient(ctx context.Context) bool {
	v, err := n.monitorJSON(ctx, "/connz")
	if err != nil {
		return false
	}
	conns, _ := v["connections"].([]any)
	return slices.ContainsFunc(conns, func(c any) bool {
		m, _ := c.(map[string]any)
		return m["name"] == "spillway-queue"
	})
}

// streamLeader returns the leader of stream as the cluster reports it to
// nc ("" when it cannot tell).
func streamLeader(nc *nats.Conn, stream string) string {
	msg, err := nc.Request("$JS.API.STREAM.INFO."+stream, nil, time.Second)
	if err != nil {
		return ""
	}
	var info struct {
		Cluster struct {
			Leader string `json:"leader"`
		} `json:"cluster"`
	}
	if json.Unmarshal(msg.Data, &info) != nil {
		return ""
	}
	return info.Cluster.Leader
}

// A gateway on a 3-node cluster (replicas 3) whose queue connection is on
// a node that gets paused (SIGSTOP: its sockets stay open and silent)
// while the two others keep a leader for the work stream: intake answers
// 202 again within 10 s, the node still paused, the connection having
// moved to another node (queue.ping_interval 1 s: the silent node is left
// after 3 s). The gateway's status shows the paused node's replicas as no
// longer current once their leaders stop hearing from it.
func TestAsyncLeavesAPausedNATSNode(t *testing.T) {
	dir := t.TempDir()
	spillway, natsServer := buildSpillway(t, dir), buildNATSServer(t, dir)
	nodes := startNATSCluster(t, natsServer, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url()
	}
	rec := newRecorder(t, 1)
	cfg := asyncConfig{
		queue:     fmt.Sprintf("  servers: [%s]\n  replicas: 3", strings.Join(urls, ", ")),
		instances: rec.urls,
		routes:    fmt.Sprintf(jobsRoute, 10),
	}.write(t, dir, "gateway")
	gw := startGW(t, spillway, cfg)
	client := newAsyncClient(t)
	post := func(body string) postAnswer {
		a, err := client.post(t.Context(), gw.public+"/jobs/x", body, "")
		if err != nil {
			t.Fatalf("POST %s: %v", body, err)
		}
		return a
	}
	if a := post("before"); a.status != http.StatusAccepted {
		t.Fatalf("POST before the pause: %d %q, want 202", a.status, a.reason)
	}

	var paused *natsNode
	within(t, 10*time.Second, "the node of the gateway's connection", func() bool {
		for _, n := range nodes {
			if n.hasQueueClient(t.Context()) {
				paused = n
				return true
			}
		}
		return false
	})
	moveWorkLeaderAway(t, nodes, paused, "SPILLWAY_JOBS")

	t.Logf("pausing %s, the node of the gateway's connection", paused.name)
	paused.signal(t, syscall.SIGSTOP)
	start := time.Now()
	refused := 0
	var last postAnswer
	within(t, 10*time.Second, "a 202 with the node paused", func() bool {
		last = post(fmt.Sprintf("during-%d", refused))
		if last.status == http.StatusAccepted {
			return true
		}
		refused++
		return false
	}, func() string { return fmt.Sprintf("%d refusals, the last %d %s", refused, last.status, last.reason) })
	t.Logf("intake resumed %v after the pause, %d refusals in between", time.Since(start).Round(time.Millisecond), refused)
	// A 202 can come back before the connection has left the paused node
	// (the store's acknowledgement may have been on its way already): the
	// move itself follows within 3 ping intervals (1 s each).
	within(t, 10*time.Second, "another node to have the gateway's queue connection", func() bool {
		for _, n := range nodes {
			if n != paused && n.hasQueueClient(t.Context()) {
				return true
			}
		}
		return false
	})

	// The weakened cluster is visible: the paused node's replicas stop
	// being current once their leaders have not heard from it for 10 s.
	var store struct {
		Server  string `json:"server"`
		Streams []struct {
			Name     string `json:"name"`
			Leader   string `json:"leader"`
			Replicas []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"replicas"`
		} `json:"streams"`
	}
	within(t, 30*time.Second, paused.name+" not current in the gateway's status", func() bool {
		code, b, err := client.admin(t.Context(), http.MethodGet, gw.admin+"/api/v1/status", false)
		var st struct {
			Store *json.RawMessage `json:"store"`
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(b, &st) != nil || st.Store == nil || json.Unmarshal(*st.Store, &store) != nil {
			return false
		}
		for _, s := range store.Streams {
			if s.Leader == "" || s.Leader == paused.name {
				return false
			}
			for _, r := range s.Replicas {
				if r.Name == paused.name && r.State == "current" {
					return false
				}
			}
		}
		return len(store.Streams) == 3
	}, func() string { return fmt.Sprintf("%+v", store) })
	t.Logf("store with %s paused: %+v", paused.name, store)
	if store.Server == paused.name {
		t.Errorf("the status says the connection is on %s, the paused node", paused.name)
	}
	paused.signal(t, syscall.SIGCONT)
	gw.term(t)
}

// moveWorkLeaderAway makes sure node does not lead stream: the test is of
// a gateway left on a stuck node while the others can take writes, not of
// a leader election. It asks the leader to step down until another is
// elected.
func moveWorkLeaderAway(t *testing.T, nodes []*natsNode, node *natsNode, stream string) {
	t.Helper()
	var other *natsNode
	for _, n := range nodes {
		if n != node {
			other = n
			break
		}
	}
	nc, err := nats.Connect(other.url(), nats.Name("e2e-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	asked := time.Time{}
	within(t, 30*time.Second, stream+" led by another node than "+node.name, func() bool {
		leader := streamLeader(nc, stream)
		if leader != "" && leader != node.name {
			return true
		}
		if leader == node.name && time.Since(asked) > 2*time.Second {
			asked = time.Now()
			_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, time.Second)
		}
		return false
	})
}
