package spillwayhttp

import (
	"net/http"

	"github.com/spillway-dev/spillway"
)

// PriorityHeader carries a request's class for load shedding — critical,
// default or sheddable (spillway.Priority's String, exact and lower case)
// — from a client to a server: the gateway sheds by it (its upstreams'
// shed:), and a service that sheds reads it with Priority.
//
// The Transport sets it on every attempt of a request whose context carries
// a class other than the default (spillway.WithPriority) and whose Header
// has none of its own: a service that calls another through a Transport
// passes the class of its own request on, as it passes its deadline on in
// TimeoutHeader. A default call carries no header, which means default.
const PriorityHeader = "Spillway-Priority"

// The PriorityHeader values the Transport sets, shared (and never
// modified) so that setting the header allocates nothing.
var (
	sheddableHeader = []string{spillway.PrioritySheddable.String()}
	criticalHeader  = []string{spillway.PriorityCritical.String()}
)

// setPriority sets h's PriorityHeader to the class of req's context when
// it is not the default and req's Header has none.
func setPriority(req *http.Request, h http.Header) {
	if _, ok := req.Header[PriorityHeader]; ok {
		return
	}
	switch spillway.PriorityOf(req.Context()) {
	case spillway.PrioritySheddable:
		h[PriorityHeader] = sheddableHeader
	case spillway.PriorityCritical:
		h[PriorityHeader] = criticalHeader
	}
}

// Priority is server middleware that gives each request's context the class
// its client sent in PriorityHeader (spillway.WithPriority), so that a
// load shedder in the handler's pipelines (package shed) and the calls the
// handler makes through a Transport with r.Context() see it: the class
// travels along the chain of calls. An absent or unknown value leaves the
// context alone (a default call).
//
// The header is the client's word: a client can claim critical. Put
// Priority behind something that sets or overwrites the header (an edge
// proxy, the gateway with a route's priority.trust_header: false) where
// clients must not choose. Protect does not shed by class: it runs a
// bulkhead, which refuses a call of any class once full; a handler that
// sheds runs a shed.Shedder (in spillway.Policies.Guards) under Priority.
func Priority(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header[PriorityHeader]; len(v) > 0 {
			if p, ok := spillway.ParsePriority(v[0]); ok && p != spillway.PriorityDefault {
				r = r.WithContext(spillway.WithPriority(r.Context(), p))
			}
		}
		next.ServeHTTP(w, r)
	})
}
