package admin_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// TestAdminRefusesForeignHosts: a page whose name an attacker points at
// the admin address (DNS rebinding) sends its own name as Host: refused,
// on every path, before the token is even looked at.
func TestAdminRefusesForeignHosts(t *testing.T) {
	h := admin.Handler(newGateway(t, "http://127.0.0.1:1", ""), admin.Options{Token: "tok", AllowedHosts: []string{"admin.internal", "[fd00::1]"}})
	for _, c := range []struct {
		host  string
		local string // the address the connection came to
		want  int
	}{
		{"localhost:9901", "", 200},
		{"LOCALHOST.", "", 200},
		{"127.0.0.1:9901", "", 200},
		{"127.1.2.3", "", 200},
		{"[::1]:9901", "", 200},
		{"admin.internal:9901", "", 200},
		{"Admin.Internal", "", 200},
		{"[fd00::1]:9901", "", 200},
		{"10.1.2.3:9901", "10.1.2.3", 200},

		{"evil.example", "", 421},
		{"evil.example:9901", "127.0.0.1", 421},
		{"localhost.evil.example", "", 421},
		{"10.1.2.4:9901", "10.1.2.3", 421},
		{"10.1.2.3:9901", "", 421},
		{"", "", 421},
	} {
		for _, path := range []string{"/healthz", "/api/v1/status", "/api/v1/reload"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Host = c.host
			if c.local != "" {
				req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP(c.local), Port: 9901}))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Code
			if got != 421 {
				got = 200 // any answer of the endpoint itself
			}
			if got != c.want {
				t.Errorf("Host %q (to %q) %s: %d, want %d", c.host, c.local, path, rec.Code, c.want)
				continue
			}
			if c.want != 421 {
				continue
			}
			var body struct {
				Error struct{ Reason, Message string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Reason != admin.ReasonHostNotAllowed ||
				rec.Header().Get(spillwayhttp.ReasonHeader) != admin.ReasonHostNotAllowed {
				t.Errorf("Host %q: %v %s, want reason %s", c.host, rec.Header(), rec.Body, admin.ReasonHostNotAllowed)
			}
		}
	}
}
