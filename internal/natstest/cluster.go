// Package natstest runs NATS JetStream clusters in the test process, for
// the tests of the queue and of the gateway on an external store.
package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is n NATS servers with JetStream, named n1…nN, forming one
// cluster "c" on 127.0.0.1. Every server is shut down when the test ends.
// Stop and Restart take one down and bring it back with its store.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	opts    []*server.Options
	servers []*server.Server
}

// StartCluster starts n servers. Each is given routes to every cluster
// port (its own is ignored), as a static cluster is configured: JetStream
// sizes its meta group from the routes. The ports are picked free before
// the servers start. It returns as soon as the servers accept clients,
// before JetStream has elected a leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := FreePorts(t, 2*n)
	clusterPorts, clientPorts := ports[:n], ports[n:]
	routes := make([]string, n)
	for i, p := range clusterPorts {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{t: t, servers: make([]*server.Server, n)}
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: t.TempDir(),
			JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30, // the queue reserves 1 GiB × replicas for dead letters
			Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
			NoSigs:  true, NoLog: true,
		})
	}
	t.Cleanup(func() {
		for i := range c.opts {
			c.Stop(i)
		}
	})
	for i := range n {
		c.start(i)
	}
	for i := range n {
		if !c.Server(i).ReadyForConnections(10 * time.Second) {
			t.Fatalf("server n%d not ready", i+1)
		}
	}
	return c
}

// Start starts a NATS server with opts as they are, shut down when the
// test ends, and waits until it accepts clients.
func Start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server %s not ready", opts.ServerName)
	}
	return s
}

// FreePorts returns n TCP ports free on 127.0.0.1 when it returns.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	// NewServer keeps the options it is given: each start gets a copy.
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatal(err)
	}
	s.Start()
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
}

// Server returns the i-th server (0-based), nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Index returns the index of the server named name, -1 if none.
func (c *Cluster) Index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// URLs are the servers' client URLs.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return urls
}

// Stop shuts the i-th server down cleanly and waits for it. Idempotent.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts the i-th server again, on its ports and its store, and
// waits until it accepts clients.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.start(i)
	if !c.Server(i).ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("server n%d not ready after restart", i+1)
	}
}
