// Package admin is the gateway's admin listener: health and readiness probes,
// Prometheus metrics, and a JSON API under /api/v1/ to inspect and operate a
// running gateway.
//
// # Endpoints
//
// The handler is one table of endpoints (see endpoints in this file), each a
// path, the methods it accepts, whether it mutates the gateway, and a
// handler:
//
//	GET    /healthz                             200 "ok" while the process runs (liveness)
//	GET    /readyz                              200 "ready" when Gateway.Ready, else 503 (readiness)
//	GET    /metrics                             Prometheus text of Gateway.Registry (promhttp)
//	GET    /api/v1/status                       Gateway.Status as JSON
//	POST   /api/v1/reload                       re-read the configuration file (Options.Reload): changes, resets, restart_required; token
//	GET    /api/v1/upstreams                    every upstream: effective policies (file's keys), instances, live figures; token
//	GET    /api/v1/upstreams/{name}             one upstream, as above (gateway.UpstreamView); 404 when unknown; token
//	PATCH  /api/v1/upstreams/{name}             overlay the body's upstream keys (as in the file) in place; the new view; token
//	POST   /api/v1/upstreams/{name}/breaker     {"state":"forced_open|closed|disabled|metrics_only|auto"}; the new view; token
//	POST   /api/v1/upstreams/{name}/instances   {"url":"http://...","action":"eject|restore"}; the new view; token
//	GET    /api/v1/routes                       every route with its fallback chain, in match order; token
//	PATCH  /api/v1/routes/{name}                {"enabled":false|true}: an optional route answers its default while off; token
//	GET    /api/v1/overrides                    the runtime changes in force: who, call, what, before, after, at; token
//	DELETE /api/v1/overrides                    drop them all, the file's configuration applied again; token
//	GET    /api/v1/jobs/{id}                    a job's queue.Status; token
//	GET    /api/v1/dead-letters                 dead letters, paged (?route=R&after=CURSOR&limit=N); token
//	GET    /api/v1/dead-letters/{id}            one dead letter with its request's headers and body; token
//	DELETE /api/v1/dead-letters/{id}            purge one; token
//	POST   /api/v1/dead-letters/{id}/replay     move one back to its queue; token
//	POST   /api/v1/dead-letters/replay?route=R  replay every dead letter of route R; token
//	DELETE /api/v1/dead-letters?route=R         purge every dead letter of route R; token
//	GET    /api/v1/faults                       the runtime faults in force (gateway.Fault); token
//	POST   /api/v1/faults                       add one (gateway.FaultSpec, expires_in at most 1h): 201 with its id and expires_at; token
//	DELETE /api/v1/faults                       the kill switch: remove every runtime fault, {"cleared":N}; token
//	DELETE /api/v1/faults/{id}                  remove one; 404 when none of that id is in force; token
//	GET    /api/v1/events                       Gateway.Events as text/event-stream (Last-Event-ID resumes); token
//	GET    /api/v1/openapi.json                 the OpenAPI 3.1 document of these endpoints (openapi.json, docs/openapi.json)
//	GET    /dashboard/                          the embedded dashboard page and its assets (dashboard.go), no token: its API calls carry it
//
// GET endpoints answer HEAD as well. A known path with another method gets 405
// with an Allow header; an unknown path gets 404. Every error answer is JSON:
// {"error":{"message":"..."}}.
//
// A request whose Host is neither a loopback name, the address it came to,
// nor one of Options.AllowedHosts gets 421 with
// {"error":{"reason":"host_not_allowed","message":"..."}}, whatever its
// path: a web page cannot reach the API through a name it controls (DNS
// rebinding).
//
// The job and dead-letter endpoints read the queue through Gateway.Queue:
// 501 when the gateway has none, 503 when the store does not answer, 404
// for an unknown id, 400 for a malformed id (32 lowercase hexadecimal
// digits), route, cursor or limit. See jobs.go for their answers.
//
// The event stream (events.go) sends each event as it is published, a
// comment every 15s while idle, and ends when the client goes, the gateway
// closes or Options.Done is closed; beyond Options.MaxStreams open streams
// it answers 503.
//
// A runtime change (runtime.go) is validated as the file is: a refused one
// answers 400 {"error":{"field":"breaker.failure_rate","message":"..."}}
// and changes nothing; an unknown upstream 404. Its body is a JSON object
// of at most MaxBody bytes (413 beyond), unknown keys refused (400 naming
// them). Each accepted change is a runtime override (gateway.Override),
// listed in /api/v1/status, kept by a reload (its answer lists them under
// "overrides") and audit-logged.
//
// The dashboard (dashboard.go) is static files embedded in the binary,
// served with a strict Content-Security-Policy; the page reads the API
// above with the token the operator types in (kept in sessionStorage, sent
// as the Authorization header, never a cookie).
//
// # Authorization
//
// Probes, metrics, status and the OpenAPI document (openapi.go) need no
// credentials: the listener is on loopback by default, CheckListen refuses
// to expose it elsewhere without a token, and the document only describes
// the API. Every other endpoint — the mutating ones, the job and
// dead-letter reads, since dead letters hold request bodies, and the
// upstream and route reads, as the brief's runtime API asks — requires
// "Authorization: Bearer <token>" of Options.Token (named "admin") or
// Options.Tokens, compared with every token in constant time (auth.go): a
// missing or wrong token gets 401. A token of the read role may make the
// guarded GETs only (403 otherwise), one of the admin role every call; the
// token's name is the gateway.Actor of the changes it makes. After a wrong
// token, the guarded calls from that client address get 429 with
// Retry-After for a delay that doubles with each wrong token (1s to 1m).
// With no token at all, the guarded calls are refused with 403 whatever
// the request carries: without a token nobody can change the gateway or
// read its jobs through the admin API, not even from loopback. No answer
// sets a cookie: there is no session for another site to ride (CSRF).
// The tokens are a TokenSet, which a reload replaces atomically: the old
// token gets 401 from the next request on.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/queue"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// Options configure Handler.
type Options struct {
	// Token is the Bearer token that the guarded calls must carry, named
	// "admin" with the admin role (admin.token).
	Token string
	// Tokens are named tokens with a role (admin.tokens): the read role
	// may make the guarded GETs, the admin role every call. With neither
	// Token nor Tokens, every guarded call is refused with 403.
	Tokens []config.AdminToken
	// TokenSet, when set, holds the tokens instead of Token and Tokens,
	// so that whoever made it can change them while the handler serves
	// (a reload); nil: a set made of Token and Tokens, fixed.
	TokenSet *TokenSet
	// Now is the clock of the delays after wrong tokens; nil: time.Now.
	Now func() time.Time
	// Reload re-reads the configuration file and applies it (POST
	// /api/v1/reload), returning what Gateway.Apply changed and reset and
	// the keys that take effect at the next restart; the answer is
	// {"reloaded":true,"changes":[...],"resets":[...],"restart_required":[...]},
	// and "overrides":{"kept":[...],"dropped":[...]} when Reload returns
	// what Gateway.Apply did (the runtime overrides it re-applied and
	// dropped). An error
	// that is a config.Errors or a *config.Error (the file is invalid) is
	// answered 400, any other 500. Nil: reloading is not supported, 501.
	Reload func() (ReloadResult, error)
	// AllowedHosts are the Host names (without port, any case) answered
	// besides loopback names (localhost, 127.0.0.0/8, ::1) and the IP
	// address the connection came to. Any other Host gets 421: a page a
	// browser loaded from another site cannot reach the admin API by
	// pointing its own name at this address (DNS rebinding).
	AllowedHosts []string
	// Done, when closed, ends the event streams (GET /api/v1/events): the
	// server closes it as it shuts down, since http.Server.Shutdown waits
	// for the handlers in flight and a stream would otherwise hold it for
	// the whole grace. Nil: streams end with their client or the gateway.
	Done <-chan struct{}
	// MaxStreams bounds the event streams open at once; one more is
	// answered 503. Default DefaultMaxStreams (64).
	MaxStreams int
}

// endpoint is one row of the admin API.
type endpoint struct {
	path   string // a ServeMux pattern without method
	method string // GET (HEAD implied), POST, PATCH or DELETE
	auth   bool   // requires the Bearer token
	handle http.HandlerFunc
}

// Handler returns the admin listener's handler for g. It is safe for
// concurrent use and holds no state of its own besides o and the count of
// event streams open.
func Handler(g *gateway.Gateway, o Options) http.Handler {
	tokens := o.TokenSet
	if tokens == nil {
		tokens = NewTokenSet(o.Token, o.Tokens)
	}
	a := &api{g: g, o: o, tokens: tokens, failed: newFailures(o.Now)}
	endpoints := []endpoint{
		{path: "/healthz", method: http.MethodGet, handle: a.healthz},
		{path: "/readyz", method: http.MethodGet, handle: a.readyz},
		{path: "/metrics", method: http.MethodGet, handle: promhttp.HandlerFor(g.Registry(), promhttp.HandlerOpts{}).ServeHTTP},
		{path: "/api/v1/status", method: http.MethodGet, handle: a.status},
		{path: "/api/v1/reload", method: http.MethodPost, auth: true, handle: a.reload},
		{path: "/api/v1/upstreams", method: http.MethodGet, auth: true, handle: a.upstreams},
		{path: "/api/v1/upstreams/{name}", method: http.MethodGet, auth: true, handle: a.upstream},
		{path: "/api/v1/upstreams/{name}", method: http.MethodPatch, auth: true, handle: a.patchUpstream},
		{path: "/api/v1/upstreams/{name}/breaker", method: http.MethodPost, auth: true, handle: a.setBreaker},
		{path: "/api/v1/upstreams/{name}/instances", method: http.MethodPost, auth: true, handle: a.setInstance},
		{path: "/api/v1/routes", method: http.MethodGet, auth: true, handle: a.routes},
		{path: "/api/v1/routes/{name}", method: http.MethodPatch, auth: true, handle: a.setRoute},
		{path: "/api/v1/overrides", method: http.MethodGet, auth: true, handle: a.overrides},
		{path: "/api/v1/overrides", method: http.MethodDelete, auth: true, handle: a.clearOverrides},
		{path: "/api/v1/jobs/{id}", method: http.MethodGet, auth: true, handle: a.job},
		{path: "/api/v1/dead-letters", method: http.MethodGet, auth: true, handle: a.deadLetters},
		{path: "/api/v1/dead-letters", method: http.MethodDelete, auth: true, handle: a.routeDeadLetters("purged", (*queue.Queue).PurgeAll)},
		{path: "/api/v1/dead-letters/replay", method: http.MethodPost, auth: true, handle: a.routeDeadLetters("replayed", (*queue.Queue).ReplayAll)},
		{path: "/api/v1/dead-letters/{id}", method: http.MethodGet, auth: true, handle: a.deadLetter},
		{path: "/api/v1/dead-letters/{id}", method: http.MethodDelete, auth: true, handle: a.oneDeadLetter("purged", (*queue.Queue).Purge)},
		{path: "/api/v1/dead-letters/{id}/replay", method: http.MethodPost, auth: true, handle: a.oneDeadLetter("replayed", (*queue.Queue).Replay)},
		{path: "/api/v1/faults", method: http.MethodGet, auth: true, handle: a.faults},
		{path: "/api/v1/faults", method: http.MethodPost, auth: true, handle: a.addFault},
		{path: "/api/v1/faults", method: http.MethodDelete, auth: true, handle: a.clearFaults},
		{path: "/api/v1/faults/{id}", method: http.MethodDelete, auth: true, handle: a.removeFault},
		{path: "/api/v1/events", method: http.MethodGet, auth: true, handle: a.events},
		{path: "/api/v1/openapi.json", method: http.MethodGet, handle: serveOpenAPI},
		{path: "/dashboard/", method: http.MethodGet, handle: dashboard()},
	}
	mux := http.NewServeMux()
	var paths []string
	byPath := map[string][]endpoint{}
	for _, e := range endpoints {
		if byPath[e.path] == nil {
			paths = append(paths, e.path)
		}
		byPath[e.path] = append(byPath[e.path], e)
	}
	for _, p := range paths {
		mux.Handle(p, a.guard(p, byPath[p]))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no admin endpoint "+r.URL.Path)
	})
	return &handler{api: a, endpoints: endpoints, mux: mux}
}

// handler is the admin listener's handler: its endpoints, served by mux
// behind the Host check.
type handler struct {
	api       *api
	endpoints []endpoint
	mux       *http.ServeMux
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.api.hostAllowed(r) {
		writeReason(w, http.StatusMisdirectedRequest, ReasonHostNotAllowed,
			"this admin listener does not answer for that Host: use a loopback name, its address, or a name of admin.allowed_hosts")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// ReasonHostNotAllowed is the reason of the 421 answer to a Host that is
// neither a loopback name, the listener's address nor an allowed host.
const ReasonHostNotAllowed = "host_not_allowed"

// hostAllowed reports whether r's Host (its port ignored) is a loopback
// name, the IP address r came to, or one of Options.AllowedHosts.
func (a *api) hostAllowed(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if host == "" {
		return false
	}
	if isLoopback(host) {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if ta, isTCP := local.(*net.TCPAddr); ok && isTCP && ta.IP.Equal(ip) {
			return true
		}
	}
	for _, h := range a.o.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), host) {
			return true
		}
	}
	return false
}

// api holds what the endpoints share.
type api struct {
	g *gateway.Gateway
	o Options
	// streams counts the event streams open (Options.MaxStreams).
	streams atomic.Int32
	// tokens are the admin tokens; failed slows down wrong ones.
	tokens *TokenSet
	failed *failures
}

// guard dispatches a request to the endpoint of path es for its method
// (405 when none), after that endpoint's authorization.
func (a *api) guard(path string, es []endpoint) http.Handler {
	var methods []string
	for _, e := range es {
		methods = append(methods, e.method)
		if e.method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
	}
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, e := range es {
			if r.Method == e.method || e.method == http.MethodGet && r.Method == http.MethodHead {
				if e.auth {
					var ok bool
					if r, ok = a.authorize(w, r); !ok {
						return
					}
				}
				e.handle(w, r)
				return
			}
		}
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+path+": use "+allow)
	})
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (a *api) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !a.g.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (a *api) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.g.Status())
}

// ReloadResult is what a reload did: every change applied and every state
// reset, and the changed keys a reload cannot apply, which take effect at
// the next restart ("listen", "tls", "server", "admin.listen",
// "admin.allowed_hosts", "queue"; never nil).
type ReloadResult struct {
	gateway.Changes
	RestartRequired []string `json:"restart_required"`
}

// reloaded is the answer of a reload: "reloaded" for the clients written
// before the changes were listed, then the ReloadResult.
type reloaded struct {
	Reloaded bool `json:"reloaded"`
	ReloadResult
}

func (a *api) reload(w http.ResponseWriter, _ *http.Request) {
	if a.o.Reload == nil {
		writeError(w, http.StatusNotImplemented, "reloading is not supported by this gateway")
		return
	}
	rs, err := a.o.Reload()
	if err == nil {
		if rs.RestartRequired == nil {
			rs.RestartRequired = []string{}
		}
		writeJSON(w, http.StatusOK, reloaded{true, rs})
		return
	}
	code := http.StatusInternalServerError
	var list config.Errors
	var one *config.Error
	if errors.As(err, &list) || errors.As(err, &one) {
		code = http.StatusBadRequest
	}
	writeError(w, code, "reload refused, the running configuration stays: "+err.Error())
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error struct {
		Reason string `json:"reason,omitempty"`
		// Field is the key of a refused change, in the file's spelling.
		Field   string `json:"field,omitempty"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeReason(w, code, "", msg)
}

// writeField writes the refusal of a change, naming the key refused.
func writeField(w http.ResponseWriter, code int, field, msg string) {
	var b errorBody
	b.Error.Field, b.Error.Message = field, msg
	writeJSON(w, code, b)
}

// writeReason writes an error answer that names its reason, in the body
// and in the Spillway-Reason header as the public listener's answers do.
func writeReason(w http.ResponseWriter, code int, reason, msg string) {
	var b errorBody
	b.Error.Reason, b.Error.Message = reason, msg
	if reason != "" {
		w.Header().Set(spillwayhttp.ReasonHeader, reason)
	}
	writeJSON(w, code, b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// CheckListen returns an error when the admin API would listen on addr
// ("host:port") beyond loopback with no token: tokens counts admin.token
// and admin.tokens (config.Admin.AllTokens). Loopback is a host in
// 127.0.0.0/8, ::1 or "localhost"; an empty host or 0.0.0.0 / :: (every
// interface) is not. With a token, any address is accepted.
func CheckListen(addr string, tokens int) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin listen address %q: %w", addr, err)
	}
	if tokens > 0 || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to serve the admin API on %q without a token: listen on loopback (127.0.0.1) or set admin.token or admin.tokens", addr)
}

func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
