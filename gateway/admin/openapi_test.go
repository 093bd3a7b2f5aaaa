package admin_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway/admin"
)

// The document names every endpoint served, each method of it, and no
// other (GET implies HEAD).
func TestOpenAPINamesTheEndpointsServed(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(admin.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	const served, documented = 1, 2
	where := map[string]int{}
	for path, item := range doc.Paths {
		for method := range item {
			if method != "parameters" && method != "summary" && method != "description" {
				where[strings.ToUpper(method)+" "+path] |= documented
			}
		}
	}
	for _, e := range admin.Served(admin.Handler(newGateway(t, "http://127.0.0.1:1", ""), admin.Options{})) {
		where[e] |= served
	}
	for e, w := range where {
		switch w {
		case served:
			t.Errorf("%s is served but not in openapi.json", e)
		case documented:
			t.Errorf("%s is in openapi.json but not served", e)
		}
	}
}

// docs/openapi.json is the document served.
func TestOpenAPIDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, admin.OpenAPI) {
		t.Error("docs/openapi.json differs from gateway/admin/openapi.json: cp gateway/admin/openapi.json docs/")
	}
}

// The document is served without a token.
func TestOpenAPIServed(t *testing.T) {
	h := admin.Handler(newGateway(t, "http://127.0.0.1:1", ""), admin.Options{})
	rec := serve(h, "GET", "/api/v1/openapi.json", "")
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), admin.OpenAPI) || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/v1/openapi.json without a token: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}
