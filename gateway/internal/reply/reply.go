// Package reply writes the answers the gateway and its async routes make
// themselves, before any policy runs, in the brief's error shape.
package reply

import (
	"io"
	"net/http"

	"github.com/spillway-dev/spillway/spillwayhttp"
)

// The reasons both the gateway and its async routes answer with.
const (
	BadRequest   = "bad_request"    // 400: ambiguous framing, CONNECT, absolute-form target, unsafe path, bad job id
	BodyTooLarge = "body_too_large" // 413: the body exceeds its limit
)

// Error writes status with Spillway-Reason: reason and the body
// {"error":{"reason":"...","message":"..."}}. reason and msg are written
// as they are: they come from the code or the configuration, never from
// a request.
func Error(w http.ResponseWriter, status int, reason, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(spillwayhttp.ReasonHeader, reason)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":{"reason":"`+reason+`","message":"`+msg+`"}}`)
}
