package gateway

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/spillway-dev/spillway/config"
)

// staleCache keeps the last successful GET and HEAD answers of a route, to be
// served when the upstream fails. It is a shared cache in RFC 9111's sense
// that serves its entries only stale, and only because the route's
// configuration allows it (§4.2.4). Its entries live ttl+serve_stale_for after
// they were written; the least valuable go first when max_bytes or
// max_entries is reached (otter's W-TinyLFU).
//
// The key is the method and the effective target URI (scheme, host, path,
// query). A response with a Vary header is stored under two keys: the base
// key holds the list of Vary header names, and the base key with those
// headers' values appended holds the response.
type staleCache struct {
	cfg     config.StaleCache
	entries *otter.Cache[string, *cacheEntry]
}

// cacheEntry is a stored answer, or (vary set) the Vary names of a base key.
type cacheEntry struct {
	vary   []string
	status int
	header http.Header
	body   []byte
	stored time.Time
	// size is what the entry holds: its key, its header names and values,
	// its body (or its Vary names).
	size int64
}

func newStaleCache(cfg config.StaleCache) (*staleCache, error) {
	// otter takes one bound, a count or a weight. Every entry weighs at
	// least max_bytes/max_entries (rounded up), so that the weight bound,
	// max_bytes, also holds the count to max_entries. (A floor above a
	// uint32 lowers the weight bound instead, which keeps both.)
	if cfg.MaxEntries < 1 || cfg.MaxBytes < 1 {
		return nil, errors.New("max_entries and max_bytes must be positive")
	}
	n := int64(cfg.MaxEntries)
	floor := cfg.MaxBytes / n
	if cfg.MaxBytes%n != 0 {
		floor++
	}
	floor = min(floor, math.MaxUint32)
	c, err := otter.New(&otter.Options[string, *cacheEntry]{
		MaximumWeight: min(uint64(cfg.MaxBytes), uint64(floor)*uint64(n)),
		Weigher: func(_ string, e *cacheEntry) uint32 {
			return uint32(min(max(e.size, floor), math.MaxUint32))
		},
		ExpiryCalculator: otter.ExpiryWriting[string, *cacheEntry](cfg.TTL + cfg.ServeStaleFor),
		// Evictions run on the goroutine that stores an entry, not on one
		// started later: the bytes held exceed max_bytes at most by the
		// entries being stored at that moment.
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, err
	}
	return &staleCache{cfg: cfg, entries: c}, nil
}

// close stops the cache's clean-up goroutine.
func (c *staleCache) close() { c.entries.StopAllGoroutines() }

// held returns the number of entries and the bytes they hold.
func (c *staleCache) held() (entries int, size int64) {
	for _, e := range c.entries.All() {
		entries++
		size += e.size
	}
	return entries, size
}

// baseKey is r's method and effective target URI (RFC 9110 §7.1): the
// scheme of the connection, the Host header (lower case, with its port),
// the path as escaped and the raw query.
func baseKey(r *http.Request) string {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return r.Method + " " + scheme + strings.ToLower(r.Host) + r.URL.EscapedPath() + "?" + r.URL.RawQuery
}

func varyKey(base string, names []string, h http.Header) string {
	var b strings.Builder
	b.WriteString(base)
	for _, n := range names {
		b.WriteString("\x00")
		b.WriteString(strings.Join(h.Values(n), ","))
	}
	return b.String()
}

// anonymous reports whether r carries no credentials: no Authorization and
// no cookie but those the route ignores. An answer to a request with
// credentials may be personal: it is not stored (RFC 9111 §3.5 for
// Authorization), and the answer stored for an anonymous request is not
// served to it either, since the upstream would have answered it otherwise.
func (c *staleCache) anonymous(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return false
	}
	for _, line := range r.Header["Cookie"] {
		for pair := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(pair, "=")
			if name = strings.TrimSpace(name); name != "" && !slices.Contains(c.cfg.IgnoreCookies, name) {
				return false
			}
		}
	}
	return true
}

// lookup returns the answer stored for r, if any.
func (c *staleCache) lookup(r *http.Request) (*cacheEntry, bool) {
	if !c.anonymous(r) {
		return nil, false
	}
	base := baseKey(r)
	e, ok := c.entries.GetIfPresent(base)
	if ok && e.vary != nil {
		e, ok = c.entries.GetIfPresent(varyKey(base, e.vary, r.Header))
	}
	return e, ok && e.vary == nil
}

// cacheable reports whether the answer resp to r may be stored, by RFC
// 9111's rules for a shared cache whose entries are only ever served stale:
// a GET or HEAD, a 2xx but 206, an anonymous request (see anonymous), no
// Set-Cookie in the answer, no Vary: *, no request Cache-Control: no-store,
// and no response Cache-Control that forbids storing (no-store, private) or
// serving stale (no-cache, must-revalidate, proxy-revalidate, s-maxage,
// which implies proxy-revalidate: §4.2.4, §5.2.2). The size is checked by
// capture.
func (c *staleCache) cacheable(r *http.Request, resp *http.Response) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.StatusCode == http.StatusPartialContent {
		return false
	}
	if !c.anonymous(r) || len(resp.Header["Set-Cookie"]) > 0 {
		return false
	}
	if hasDirective(r.Header["Cache-Control"], "no-store") ||
		hasDirective(resp.Header["Cache-Control"], "no-store", "private", "no-cache", "must-revalidate", "proxy-revalidate", "s-maxage") {
		return false
	}
	if isEventStream(resp.Header) {
		// A stream of events is news as it happens: replayed later, it
		// would tell a reconnecting client old events as new ones.
		return false
	}
	for _, v := range resp.Header["Vary"] {
		if strings.Contains(v, "*") {
			return false
		}
	}
	return true
}

// isEventStream reports whether h is the header of a server-sent event
// stream (text/event-stream, any parameters).
func isEventStream(h http.Header) bool {
	v := h["Content-Type"] // canonical already: no Get, which canonicalises
	if len(v) == 0 {
		return false
	}
	ct, _, _ := strings.Cut(v[0], ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// hasDirective reports whether the Cache-Control values name one of the
// directives (a name alone or with an argument, in any case). A comma in a
// quoted argument may make a false match: never a missed one.
func hasDirective(values []string, names ...string) bool {
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			d, _, _ = strings.Cut(d, "=")
			d = strings.TrimSpace(d)
			for _, n := range names {
				if strings.EqualFold(d, n) {
					return true
				}
			}
		}
	}
	return false
}

// capture wraps resp's body so that, once it has been read to its end,
// the answer is stored for r, unless the entry would be larger than
// max_entry_bytes: then the body stops being copied as soon as it is.
func (c *staleCache) capture(r *http.Request, resp *http.Response) {
	var vary []string
	varySize := 0
	for _, v := range resp.Header.Values("Vary") {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				vary = append(vary, http.CanonicalHeaderKey(n))
				varySize += len(n)
			}
		}
	}
	key := baseKey(r)
	base := key
	if vary != nil {
		key = varyKey(base, vary, r.Header)
	}
	size := int64(len(key)) + headerSize(resp.Header)
	limit := c.cfg.MaxEntryBytes - size
	if limit < 0 || resp.ContentLength > limit {
		return
	}
	e := &cacheEntry{status: resp.StatusCode, header: resp.Header.Clone(), size: size}
	resp.Body = &captureBody{ReadCloser: resp.Body, limit: int(limit), done: func(body []byte) {
		e.body, e.stored = body, time.Now()
		e.size += int64(len(body))
		if vary != nil {
			c.entries.Set(base, &cacheEntry{vary: vary, size: int64(len(base) + varySize)})
		}
		c.entries.Set(key, e)
	}}
}

// headerSize is the bytes of h's names and values.
func headerSize(h http.Header) int64 {
	var n int
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return int64(n)
}

// captureBody copies what is read, up to limit bytes, and hands it to done
// at the end of the body. A longer body stops being copied, and its copy is
// dropped, as soon as it exceeds limit.
type captureBody struct {
	io.ReadCloser
	buf   bytes.Buffer
	limit int
	over  bool
	done  func([]byte)
}

func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.over {
		if b.buf.Len()+n > b.limit {
			b.over = true
			b.buf = bytes.Buffer{}
		} else {
			b.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !b.over && b.done != nil {
		b.done(bytes.Clone(b.buf.Bytes()))
		b.done = nil
	}
	return n, err
}

// serve writes e as a stale answer.
func (e *cacheEntry) serve(w http.ResponseWriter, r *http.Request, now time.Time) {
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	h.Set("Age", strconv.FormatInt(int64(now.Sub(e.stored)/time.Second), 10))
	h.Set(FallbackHeader, FallbackStaleCache)
	if r.Method == http.MethodHead {
		// A HEAD answer keeps the Content-Length the upstream sent.
		w.WriteHeader(e.status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}
