package admin

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the admin API. This file is its
// source; docs/openapi.json is a copy that a test keeps equal, and another
// holds it to the endpoints served.
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI answers GET /api/v1/openapi.json without a token, as
// status: the document describes the API, which is public in the source,
// and reveals nothing of the running gateway.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(openAPI)
}
