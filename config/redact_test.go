package config

import (
	"strings"
	"testing"
)

// TestMessagesNeverEchoEnvironmentValues: a value expanded from ${VAR} —
// a password in a URL, a token, an address — is shown as ${VAR} in every
// error and warning, whichever check reports it (issue 9, item 10).
func TestMessagesNeverEchoEnvironmentValues(t *testing.T) {
	env := map[string]string{
		"NATS_PASS":   "hunter2",
		"NATS_URL":    "nats://bob:s3cr3t-pw@nats-1:notaport",
		"ADMIN_ADDR":  "topsecretvalue",
		"QUOTED":      `pa"ss\word`,
		"SHORT":       "7",
		"ALSO_SECRET": "hunter2", // the same value under two names
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	file := `
admin: {listen: "${ADMIN_ADDR}"}
queue:
  servers: ["nats://alice:${NATS_PASS}@nats-0:bad", "${NATS_URL}", "nats://x:${QUOTED}@h:bad"]
  user: u
  password: ${ALSO_SECRET}
upstreams:
  a: {instances: ["http://u:${NATS_PASS}@127.0.0.1:9001", "http://${SHORT}:bad"]}
routes:
  - {name: r, upstream: a, timeout: "${NATS_PASS}"}
`
	_, ws, err := Parse("t.yaml", []byte(file), lookup)
	if err == nil {
		t.Fatal("the file should be refused")
	}
	out := strings.Join(problems(ws, err), "\n")
	for _, secret := range []string{"hunter2", "s3cr3t-pw", "topsecretvalue", `pa\"ss\\word`, `pa"ss\word`} {
		if strings.Contains(out, secret) {
			t.Errorf("a message echoes %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`listen: "${ADMIN_ADDR}"`, `queue.servers[1]: "nats://REDACTED@nats-1:notaport"`,
		`timeout: invalid duration "${NATS_PASS}"`, `instances[0]: "http://REDACTED@127.0.0.1:9001"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "routes[${SHORT}]") {
		t.Errorf("a short value mangled an index:\n%s", out)
	}
}
