package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spillway-dev/spillway/gateway"
)

// The runtime API: the effective policies and live figures of the
// upstreams, the routes with their fallback chains, and the changes made
// to a running gateway, each recorded as an override.

// MaxBody bounds the body of a runtime change: a larger one gets 413.
const MaxBody = 64 << 10

func (a *api) upstreams(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": a.g.Upstreams()})
}

func (a *api) upstream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	v, ok := a.g.Upstream(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no upstream "+name)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *api) routes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"routes": a.g.Routes()})
}

// patchUpstream overlays the body, an upstream's keys as the file writes
// them, on the upstream: PATCH /api/v1/upstreams/{name}.
func (a *api) patchUpstream(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	v, err := a.g.PatchUpstream(actor(r), r.PathValue("name"), body)
	answerChange(w, v, err)
}

// setBreaker moves a breaker: POST /api/v1/upstreams/{name}/breaker
// {"state":"forced_open|closed|disabled|metrics_only|auto"}.
func (a *api) setBreaker(w http.ResponseWriter, r *http.Request) {
	var b struct {
		State string `json:"state"`
	}
	if !decodeBody(w, r, &b) {
		return
	}
	v, err := a.g.SetBreaker(actor(r), r.PathValue("name"), b.State)
	answerChange(w, v, err)
}

// setInstance ejects or restores an instance: POST
// /api/v1/upstreams/{name}/instances {"url":"http://...","action":"eject|restore"}.
func (a *api) setInstance(w http.ResponseWriter, r *http.Request) {
	var b struct {
		URL    string `json:"url"`
		Action string `json:"action"`
	}
	if !decodeBody(w, r, &b) {
		return
	}
	v, err := a.g.SetInstance(actor(r), r.PathValue("name"), b.URL, b.Action)
	answerChange(w, v, err)
}

// setRoute switches an optional route off or on: PATCH
// /api/v1/routes/{name} {"enabled":false}.
func (a *api) setRoute(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Enabled *bool `json:"enabled"`
	}
	if !decodeBody(w, r, &b) {
		return
	}
	if b.Enabled == nil {
		writeField(w, http.StatusBadRequest, "enabled", "enabled (true or false) is required")
		return
	}
	v, err := a.g.SetRoute(actor(r), r.PathValue("name"), *b.Enabled)
	answerChange(w, v, err)
}

func (a *api) overrides(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"overrides": a.g.Overrides()})
}

// clearOverrides drops every override, the file's configuration applied
// again: DELETE /api/v1/overrides.
func (a *api) clearOverrides(w http.ResponseWriter, r *http.Request) {
	n := len(a.g.Overrides())
	cs, err := a.g.ClearOverrides(actor(r))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Cleared int `json:"cleared"`
		gateway.Changes
	}{n, cs})
}

func actor(r *http.Request) gateway.Actor {
	return gateway.Actor{Who: caller(r), Call: r.Method + " " + r.URL.Path}
}

// answerChange answers a runtime change: the upstream's new effective
// policies or the route's new view, or why it was refused (400 naming the
// key, 404 for an unknown name).
func answerChange(w http.ResponseWriter, v any, err error) {
	var re *gateway.RefusedError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.As(err, &re):
		writeField(w, http.StatusBadRequest, re.Field, re.Message)
	case errors.Is(err, gateway.ErrUnknown):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// readBody reads a change's body, a JSON object of at most MaxBody bytes,
// or answers why not.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBody))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return nil, false
	case !json.Valid(body) || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")):
		writeError(w, http.StatusBadRequest, "the body must be a JSON object")
		return nil, false
	}
	return body, true
}

// decodeBody decodes a change's body into v, refusing unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var field string
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field = strings.Trim(f, `"`)
		}
		writeField(w, http.StatusBadRequest, field, err.Error())
		return false
	}
	return true
}
