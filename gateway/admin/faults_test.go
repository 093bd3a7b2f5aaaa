package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

// TestFaultsAPI: a fault added (201 with a random id and its expiry),
// listed, refused naming the field, removed, and all cleared by the kill
// switch; a read token may list only.
func TestFaultsAPI(t *testing.T) {
	h := tokensAPI(t, nil)
	call := func(method, path, token, body string, code int) string {
		t.Helper()
		rec := serveFrom(h, "192.0.2.1", method, path, token, body)
		if rec.Code != code {
			t.Errorf("%s %s with %s: %d %s, want %d", method, path, token, rec.Code, rec.Body, code)
		}
		return rec.Body.String()
	}
	const fault = `{"route":"app","delay":{"percent":50,"duration":"2s"},"abort":{"percent":10,"status":503},"expires_in":"10m"}`
	call("POST", "/api/v1/faults", "viewer-token", fault, 403)
	var f gateway.Fault
	if err := json.Unmarshal([]byte(call("POST", "/api/v1/faults", "ops-token", fault, 201)), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.ID) != 16 || f.Who != "ops" || f.Route != "app" || *f.Abort.Percent != 10 || time.Until(f.ExpiresAt) > 10*time.Minute {
		t.Errorf("fault = %+v", f)
	}
	if body := call("GET", "/api/v1/faults", "viewer-token", "", 200); !strings.Contains(body, `"id":"`+f.ID+`"`) {
		t.Errorf("list: %s", body)
	}
	for _, tt := range []struct{ body, field string }{
		{`{"route":"app","delay":{"percent":500,"duration":"2s"},"expires_in":"10m"}`, "delay.percent"},
		{`{"route":"app","abort":{"percent":5,"status":503}}`, "expires_in"},
		{`{"route":"app","abort":{"percent":5,"status":503,"code":1},"expires_in":"1m"}`, "code"},
	} {
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(call("POST", "/api/v1/faults", "root", tt.body, 400)), &e)
		if e.Error.Field != tt.field {
			t.Errorf("POST %s: field %q, want %q", tt.body, e.Error.Field, tt.field)
		}
	}
	call("POST", "/api/v1/faults", "root", `{"route":"nope","abort":{"percent":5,"status":503},"expires_in":"1m"}`, 404)
	call("DELETE", "/api/v1/faults/"+f.ID, "viewer-token", "", 403)
	call("DELETE", "/api/v1/faults/"+f.ID, "root", "", 200)
	call("DELETE", "/api/v1/faults/"+f.ID, "root", "", 404)
	call("POST", "/api/v1/faults", "root", fault, 201)
	call("POST", "/api/v1/faults", "root", fault, 201)
	call("DELETE", "/api/v1/faults", "viewer-token", "", 403)
	if body := call("DELETE", "/api/v1/faults", "root", "", 200); body != `{"cleared":2}`+"\n" {
		t.Errorf("kill switch: %q", body)
	}
	if body := call("GET", "/api/v1/faults", "root", "", 200); !strings.Contains(body, `"faults":[]`) {
		t.Errorf("after the kill switch: %s", body)
	}
}

// TestTheAdminListenerIgnoresFaultHeaders: a fault header asks nothing of
// the admin API, which proxies nothing.
func TestTheAdminListenerIgnoresFaultHeaders(t *testing.T) {
	h := tokensAPI(t, nil)
	for _, path := range []string{"/healthz", "/api/v1/status", "/api/v1/faults"} {
		req := httptest.NewRequest(http.MethodGet, "http://localhost:9901"+path, nil)
		req.Header.Set("Authorization", "Bearer viewer-token")
		req.Header.Set(gateway.FaultAbortHeader, "503")
		req.Header.Set(gateway.FaultDelayHeader, "1m")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s with fault headers: %d", path, rec.Code)
		}
	}
}
