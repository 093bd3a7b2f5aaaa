package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway/config"
)

// credential is one admin token, kept as its SHA-256 sum: every token is
// compared to the one presented as a fixed-size sum, so the time taken
// says neither which token matched nor how long any is.
type credential struct {
	name string
	sum  [sha256.Size]byte
	read bool // the read role: the token-guarded GETs only
}

// TokenSet is the admin tokens a Handler checks (admin.token, named
// "admin", and admin.tokens), replaceable while it serves: a reload sets
// the new ones atomically. A request is judged by the set in place when
// it arrived; an event stream authorized by a token since removed goes on
// until it ends. Safe for concurrent use.
type TokenSet struct {
	creds atomic.Pointer[[]credential]
}

// NewTokenSet returns the set of token (named "admin", with the admin
// role; none when empty) and tokens.
func NewTokenSet(token string, tokens []config.AdminToken) *TokenSet {
	s := &TokenSet{}
	s.Set(token, tokens)
	return s
}

// Set replaces the tokens: the requests that arrive from now on are judged
// by token and tokens only.
func (s *TokenSet) Set(token string, tokens []config.AdminToken) {
	var cs []credential
	for _, t := range (config.Admin{Token: token, Tokens: tokens}).AllTokens() {
		cs = append(cs, credential{name: t.Name, sum: sha256.Sum256([]byte(t.Token)), read: t.Role == config.RoleRead})
	}
	s.creds.Store(&cs)
}

func (s *TokenSet) load() []credential { return *s.creds.Load() }

// match returns the credential of the Bearer token in h, comparing it with
// every credential whatever the outcome (no early exit).
func match(cs []credential, h string) (credential, bool) {
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return credential{}, false
	}
	sum := sha256.Sum256([]byte(h[len(prefix):]))
	found := -1
	for i := range cs {
		found = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], cs[i].sum[:]), i, found)
	}
	if found < 0 {
		return credential{}, false
	}
	return cs[found], true
}

type callerKey struct{}

// caller is the name of the token r was authorized with, "" for a call
// that needs none.
func caller(r *http.Request) string {
	name, _ := r.Context().Value(callerKey{}).(string)
	return name
}

// authorize checks the Bearer token of a call that requires it, and its
// role for the call's method, and answers the refusal itself; it returns
// r carrying the caller's name.
func (a *api) authorize(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	creds := a.tokens.load()
	if len(creds) == 0 {
		writeError(w, http.StatusForbidden, "this admin call is disabled: no admin token is configured (admin.token or admin.tokens)")
		return r, false
	}
	addr := clientAddr(r)
	if wait := a.failed.wait(addr); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "too many wrong admin tokens from this address: retry later")
		return r, false
	}
	h := r.Header.Get("Authorization")
	c, ok := match(creds, h)
	if !ok {
		if h != "" { // no header is no guess: only a wrong token slows down
			a.failed.fail(addr)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="spillway-admin"`)
		writeError(w, http.StatusUnauthorized, "a valid Authorization: Bearer <token> header is required")
		return r, false
	}
	a.failed.succeed(addr)
	if c.read && r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusForbidden, "the admin token "+strconv.Quote(c.name)+" has the read role: "+r.Method+" needs a token of the admin role")
		return r, false
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c.name)), true
}

// clientAddr is the IP address r came from (no forwarding header is
// trusted: the admin listener is reached directly).
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// The delays after wrong tokens.
const (
	// maxFailingAddrs bounds the addresses remembered: beyond, the one
	// whose last failure is the oldest is forgotten.
	maxFailingAddrs = 1024
	// failureDelay is the delay after the first wrong token; it doubles
	// with each further one, up to maxFailureDelay.
	failureDelay    = time.Second
	maxFailureDelay = time.Minute
	// failureWindow: an address whose last wrong token is older starts
	// afresh.
	failureWindow = 15 * time.Minute
)

// failures slows down the addresses that sent wrong tokens: after the
// n-th in a row, their token-guarded calls are answered 429 with
// Retry-After for failureDelay·2ⁿ⁻¹ (at most maxFailureDelay), whatever
// token they carry, so guessing costs time. A right token or
// failureWindow without a wrong one starts afresh. It holds at most
// maxFailingAddrs addresses, and its lock is held for a map operation
// only: a slowed client never waits on the server, it is told when to
// come back, and other clients are not delayed.
type failures struct {
	now    func() time.Time
	mu     sync.Mutex
	byAddr map[string]failure
}

type failure struct {
	count int
	last  time.Time // of the last wrong token
	until time.Time // the address is refused until then
}

func newFailures(now func() time.Time) *failures {
	if now == nil {
		now = time.Now
	}
	return &failures{now: now, byAddr: map[string]failure{}}
}

// wait returns how long addr must still wait, 0 when it may try.
func (f *failures) wait(addr string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.byAddr[addr]
	if !ok {
		return 0
	}
	return max(e.until.Sub(f.now()), 0)
}

// fail records a wrong token from addr.
func (f *failures) fail(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	e, ok := f.byAddr[addr]
	if !ok && len(f.byAddr) >= maxFailingAddrs {
		f.evictOldest()
	}
	if now.Sub(e.last) > failureWindow {
		e.count = 0
	}
	e.count++
	e.last = now
	e.until = now.Add(min(failureDelay<<min(e.count-1, 16), maxFailureDelay))
	f.byAddr[addr] = e
}

// succeed forgets addr's wrong tokens.
func (f *failures) succeed(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byAddr, addr)
}

// evictOldest forgets the address whose last wrong token is the oldest: a
// scan, run only when a new address fails while the map is full.
func (f *failures) evictOldest() {
	var oldest string
	var at time.Time
	for addr, e := range f.byAddr {
		if oldest == "" || e.last.Before(at) {
			oldest, at = addr, e.last
		}
	}
	delete(f.byAddr, oldest)
}
