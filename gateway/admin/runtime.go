package admin

import "net/http"

// The runtime API's reads: the effective policies and live figures of the
// upstreams, and the routes with their fallback chains.

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
