package admin

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// The document names every endpoint served, each method of it, and no
// other (GET implies HEAD).
func TestOpenAPINamesTheEndpointsServed(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method := range item {
			if method != "parameters" && method != "summary" && method != "description" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	var served []string
	for _, e := range adminHandler(t).endpoints {
		served = append(served, e.method+" "+e.path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("%s is served but not in openapi.json", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("%s is in openapi.json but not served", d)
		}
	}
}

// docs/openapi.json is the document served.
func TestOpenAPIDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, openAPI) {
		t.Error("docs/openapi.json differs from gateway/admin/openapi.json: cp gateway/admin/openapi.json docs/")
	}
}

func adminHandler(t *testing.T) *handler {
	t.Helper()
	cfg, _, err := config.Parse("t.yaml", []byte("upstreams:\n  app: {instances: ['http://127.0.0.1:1']}\nroutes: [{name: app, upstream: app}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return Handler(g, Options{}).(*handler)
}

// The document is served without a token.
func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	adminHandler(t).ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/api/v1/openapi.json", nil))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), openAPI) || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/v1/openapi.json without a token: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}
