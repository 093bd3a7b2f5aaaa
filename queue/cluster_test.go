package queue

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/spillway-dev/spillway/internal/natstest"
)

// startExternal runs a NATS server with JetStream on 127.0.0.1 with the
// given options (authentication, TLS, a storage limit) on top of the test
// defaults, shut down at the end of the test.
func startExternal(t *testing.T, opts server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.JetStreamMaxMemory = 16 << 20
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = 4 << 30
	}
	opts.NoSigs, opts.NoLog = true, true
	return natstest.Start(t, &opts)
}

// openDeliverOne opens cfg, enqueues one job and waits for a worker to
// deliver it: the connection works for both publishing and fetching.
func openDeliverOne(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Embedded() {
		t.Fatal("external queue says embedded")
	}
	rec := newRecorder(nil)
	w, err := q.Consume("orders", fast(Policy{}), rec.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	id, _, err := q.Enqueue(ctx, "orders", Message{Data: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if j := rec.next(t); j.ID != id || string(j.Data) != "hello" {
		t.Fatalf("delivered %s %q, want %s %q", j.ID, j.Data, id, "hello")
	}
	waitState(t, q, id, StateDelivered)
}

// openRefused checks that Open with cfg fails fast, well within its 3 s
// context, with ErrUnavailable and an error that names the cause (one of
// causes, lower case).
func openRefused(t *testing.T, cfg Config, causes ...string) {
	t.Helper()
	const bound = 3 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	start := time.Now()
	q, err := Open(ctx, cfg)
	took := time.Since(start)
	if err == nil {
		q.Close()
		t.Fatal("Open succeeded, want a refusal")
	}
	if !errors.Is(err, ErrUnavailable) || ReasonOf(err) != ReasonUnavailable {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	named := false
	for _, c := range causes {
		named = named || strings.Contains(strings.ToLower(err.Error()), c)
	}
	if !named {
		t.Fatalf("Open = %v, want the cause named (%q)", err, causes)
	}
	// A refusal is not retried: it comes back long before the context ends.
	if took > bound/2 {
		t.Fatalf("Open took %v to fail, want < %v", took, bound/2)
	}
	t.Logf("refused in %v: %v", took.Round(time.Millisecond), err)
}

func TestExternalUserPassword(t *testing.T) {
	s := startExternal(t, server.Options{Username: "u", Password: "p"})
	cfg := Config{Servers: []string{s.ClientURL()}, Prefix: "AUTH", User: "u", Password: "p"}
	openDeliverOne(t, cfg)

	t.Run("wrong password", func(t *testing.T) {
		bad := cfg
		bad.Password = "wrong"
		openRefused(t, bad, "authorization violation")
	})
	t.Run("no credentials", func(t *testing.T) {
		bad := cfg
		bad.User, bad.Password = "", ""
		openRefused(t, bad, "authorization violation")
	})
}

func TestExternalToken(t *testing.T) {
	s := startExternal(t, server.Options{Authorization: "tok"})
	cfg := Config{Servers: []string{s.ClientURL()}, Prefix: "TOKEN", Token: "tok"}
	openDeliverOne(t, cfg)

	t.Run("wrong token", func(t *testing.T) {
		bad := cfg
		bad.Token = "nope"
		openRefused(t, bad, "authorization violation")
	})
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "spillway test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{CA: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.CA, "CERTIFICATE", caDER)

	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.ServerCert, p.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestExternalMutualTLS: a server that requires a client certificate
// signed by its CA takes the queue's connection with TLS{CA, Cert, Key},
// and refuses it without the certificate or when the client cannot
// verify the server.
func TestExternalMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s := startExternal(t, server.Options{TLSConfig: tc, TLSVerify: true, TLSTimeout: 2})
	url := fmt.Sprintf("tls://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
	cfg := Config{Servers: []string{url}, Prefix: "TLS",
		TLS: &TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}}
	openDeliverOne(t, cfg)

	t.Run("no client certificate", func(t *testing.T) {
		bad := cfg
		bad.TLS = &TLS{CA: pki.CA}
		// With TLS 1.3 the client's handshake ends before the server
		// checks the certificate: the client learns of the refusal from
		// the alert or, when its CONNECT is written first, from the
		// closed connection.
		openRefused(t, bad, "certificate required", "closed by remote after tls handshake")
	})
	t.Run("server not trusted", func(t *testing.T) {
		bad := cfg
		bad.TLS = &TLS{Cert: pki.ClientCert, Key: pki.ClientKey} // system roots
		openRefused(t, bad, "certificate signed by unknown authority")
	})
}

// startCluster runs n NATS servers with JetStream as one cluster "c"
// (natstest.StartCluster). It returns as soon as the servers accept
// clients, before JetStream has elected a leader.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	c := natstest.StartCluster(t, n)
	servers := make([]*server.Server, n)
	for i := range n {
		servers[i] = c.Server(i)
	}
	return servers
}

// within polls cond until it holds or d has passed.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter records how many times each job id was handled.
type counter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *counter) handle(_ context.Context, j *Job) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[j.ID]++
	return Result{Outcome: Delivered}
}

func (c *counter) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

// TestThreeNodeCluster: Open with Replicas 3 on a cluster that is still
// forming retries until the streams can be placed; 100 jobs are delivered
// once each; with the work stream's leader shut down, the two nodes left
// take and deliver 20 more.
func TestThreeNodeCluster(t *testing.T) {
	servers := startCluster(t, 3)
	for _, s := range servers {
		if s.JetStreamIsLeader() {
			t.Logf("%s already meta leader before Open", s.Name())
		}
	}
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	// Each attempt of Open is bounded by Timeout; the context bounds them
	// all. A meta election that misses its first round waits a raft
	// election timeout (4 to 9 s) before the next: hence 30 s, as the docs
	// advise.
	openCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	q, err := Open(openCtx, Config{Servers: urls, Replicas: 3, Prefix: "R3", Timeout: time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	t.Logf("Open on a forming cluster took %v", time.Since(start).Round(time.Millisecond))
	ctx := t.Context()
	for _, name := range []string{q.q.workName, q.q.deadName, "KV_" + q.q.bucket} {
		st, err := q.q.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: replicas %d, cluster %+v", name, info.Config.Replicas, info.Cluster)
		}
	}

	c := &counter{seen: map[string]int{}}
	w, err := q.Consume("orders", fast(Policy{Concurrency: 8, AckWait: 3 * time.Second}), c.handle, WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stopWorker(t, w)
	cons, err := q.q.work.Consumer(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if ci := cons.CachedInfo(); ci.Cluster == nil || len(ci.Cluster.Replicas) != 2 {
		t.Fatalf("consumer orders: cluster %+v, want a leader and two replicas", ci.Cluster)
	}

	// enqueue retries while the cluster fails over (a publish while
	// disconnected fails at once, one whose ack is lost is uncertain); the
	// key makes a retry of a job whose ack was lost store nothing new.
	enqueue := func(key string) string {
		t.Helper()
		var id string
		within(t, 15*time.Second, "job "+key+" stored", func() bool {
			var err error
			id, _, err = q.Enqueue(ctx, "orders", Message{Key: key, Data: []byte(key)})
			if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrUncertain) {
				t.Fatalf("enqueue %s: %v", key, err)
			}
			return err == nil
		})
		return id
	}
	var ids []string
	for i := range 100 {
		ids = append(ids, enqueue(fmt.Sprintf("a%d", i)))
	}
	within(t, 10*time.Second, "100 jobs delivered", func() bool {
		for _, id := range ids {
			if c.count(id) == 0 {
				return false
			}
		}
		return true
	})
	// Drained (nothing pending or unacknowledged): no late duplicate can come.
	within(t, 10*time.Second, "drained", func() bool {
		st, err := q.Stats(ctx, "orders")
		return err == nil && st.Pending == 0
	})
	for _, id := range ids {
		if n := c.count(id); n != 1 {
			t.Fatalf("job %s delivered %d times", id, n)
		}
	}

	info, err := q.q.work.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.Cluster.Leader
	down := false
	for _, s := range servers {
		if s.Name() == leader {
			t.Logf("shutting down %s, the work stream's leader (client on %s)", leader, q.q.nc.ConnectedServerName())
			s.Shutdown()
			s.WaitForShutdown()
			down = true
		}
	}
	if !down {
		t.Fatalf("work stream leader %q is none of the servers", leader)
	}

	start = time.Now()
	ids = ids[:0]
	for i := range 20 {
		ids = append(ids, enqueue(fmt.Sprintf("b%d", i)))
	}
	within(t, 15*time.Second, "20 jobs delivered after the loss of a node", func() bool {
		for _, id := range ids {
			if c.count(id) == 0 {
				return false
			}
		}
		return true
	})
	within(t, 10*time.Second, "drained after the loss", func() bool {
		st, err := q.Stats(ctx, "orders")
		return err == nil && st.Pending == 0
	})
	t.Logf("20 jobs through two nodes in %v", time.Since(start).Round(time.Millisecond))
	// Delivery is at least once: an ack lost while the leaders move may
	// bring a job back, which the package allows.
	for _, id := range ids {
		if n := c.count(id); n != 1 {
			t.Logf("job %s delivered %d times across the failover", id, n)
		}
	}
}

// credsFile writes a .creds file (user JWT and nkey seed) for a user of
// account akp, signed by that account.
func credsFile(t *testing.T, akp nkeys.KeyPair) string {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, err := ukp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := ukp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestExternalCredsFile: a server in operator (JWT) mode takes the
// queue's connection with a .creds file of a user of an account that has
// JetStream, and refuses a user of an account it does not know.
func TestExternalCredsFile(t *testing.T) {
	okp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opub, err := okp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	operator := jwt.NewOperatorClaims(opub)
	resolver := &server.MemAccResolver{}
	account := func(name string, js bool) (nkeys.KeyPair, string) {
		akp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		apub, err := akp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		ac := jwt.NewAccountClaims(apub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		if err := resolver.Store(apub, ajwt); err != nil {
			t.Fatal(err)
		}
		return akp, apub
	}
	_, sys := account("SYS", false)
	app, _ := account("APP", true)
	s := startExternal(t, server.Options{TrustedOperators: []*jwt.OperatorClaims{operator},
		SystemAccount: sys, AccountResolver: resolver})
	cfg := Config{Servers: []string{s.ClientURL()}, Prefix: "CREDS", CredsFile: credsFile(t, app)}
	openDeliverOne(t, cfg)

	t.Run("unknown account", func(t *testing.T) {
		stranger, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		bad := cfg
		bad.CredsFile = credsFile(t, stranger)
		openRefused(t, bad, "authorization violation")
	})
	t.Run("missing file", func(t *testing.T) {
		bad := cfg
		bad.CredsFile = filepath.Join(t.TempDir(), "none.creds")
		openRefused(t, bad, "no such file")
	})
}
