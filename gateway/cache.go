package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/spillway-dev/spillway/config"
)

// MaxCachedBody is the largest response body the stale cache keeps: a longer
// one is streamed to the client and not cached.
const MaxCachedBody = 1 << 20

// staleCache keeps the last successful GET and HEAD answers of a route, to be
// served when the upstream fails. Its entries live ttl+serve_stale_for after
// they were written; the least valuable go first when max_entries is reached
// (otter's W-TinyLFU).
//
// A response with a Vary header is stored under two keys: the request's base
// key (method, host, path, query) holds the list of Vary header names, and
// the base key with those headers' values appended holds the response.
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
}

func newStaleCache(cfg config.StaleCache) (*staleCache, error) {
	c, err := otter.New(&otter.Options[string, *cacheEntry]{
		MaximumSize:      cfg.MaxEntries,
		ExpiryCalculator: otter.ExpiryWriting[string, *cacheEntry](cfg.TTL + cfg.ServeStaleFor),
	})
	if err != nil {
		return nil, err
	}
	return &staleCache{cfg: cfg, entries: c}, nil
}

// close stops the cache's clean-up goroutine.
func (c *staleCache) close() { c.entries.StopAllGoroutines() }

func baseKey(r *http.Request) string {
	return r.Method + " " + strings.ToLower(r.Host) + " " + r.URL.EscapedPath() + "?" + r.URL.RawQuery
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

// lookup returns the answer stored for r, if any.
func (c *staleCache) lookup(r *http.Request) (*cacheEntry, bool) {
	base := baseKey(r)
	e, ok := c.entries.GetIfPresent(base)
	if ok && e.vary != nil {
		e, ok = c.entries.GetIfPresent(varyKey(base, e.vary, r.Header))
	}
	return e, ok && e.vary == nil
}

// cacheable reports whether the answer resp to r may be stored: a GET or
// HEAD, a 2xx but 206, no Authorization on the request (RFC 9111 §3.5: a
// shared cache must not reuse it for others), no Set-Cookie, no
// Cache-Control no-store or private, no Vary: *.
func cacheable(r *http.Request, resp *http.Response) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.StatusCode == http.StatusPartialContent {
		return false
	}
	if r.Header.Get("Authorization") != "" || resp.Header.Get("Set-Cookie") != "" {
		return false
	}
	for _, v := range append(resp.Header.Values("Cache-Control"), r.Header.Values("Cache-Control")...) {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "no-store" || d == "private" || strings.HasPrefix(d, "private=") {
				return false
			}
		}
	}
	if resp.ContentLength > MaxCachedBody {
		return false
	}
	for _, v := range resp.Header.Values("Vary") {
		if strings.Contains(v, "*") {
			return false
		}
	}
	return true
}

// capture wraps resp's body so that, once it has been read to its end,
// the answer is stored for r.
func (c *staleCache) capture(r *http.Request, resp *http.Response) {
	var vary []string
	for _, v := range resp.Header.Values("Vary") {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				vary = append(vary, http.CanonicalHeaderKey(n))
			}
		}
	}
	key := baseKey(r)
	base := key
	if vary != nil {
		key = varyKey(base, vary, r.Header)
	}
	e := &cacheEntry{status: resp.StatusCode, header: resp.Header.Clone()}
	resp.Body = &captureBody{ReadCloser: resp.Body, done: func(body []byte) {
		e.body, e.stored = body, time.Now()
		if vary != nil {
			c.entries.Set(base, &cacheEntry{vary: vary})
		}
		c.entries.Set(key, e)
	}}
}

// captureBody copies what is read, up to MaxCachedBody, and hands it to done
// at the end of the body.
type captureBody struct {
	io.ReadCloser
	buf  bytes.Buffer
	over bool
	done func([]byte)
}

func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.over {
		if b.buf.Len()+n > MaxCachedBody {
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
