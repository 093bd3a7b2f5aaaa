package spillwayhttp

import (
	"encoding/json"
	"testing"

	"github.com/spillway-dev/spillway"
)

// marshalErrorBody is the reference appendErrorBody must match byte for
// byte: the brief's body as encoding/json marshals it.
func marshalErrorBody(t testing.TB, reason spillway.Reason, upstream, msg string, retryAfter int64) string {
	type detail struct {
		Reason            spillway.Reason `json:"reason"`
		Upstream          string          `json:"upstream"`
		Message           string          `json:"message"`
		RetryAfterSeconds int64           `json:"retry_after_seconds,omitempty"`
	}
	b, err := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{reason, upstream, msg, retryAfter}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendErrorBodyMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "catalog", `a"b\c`, "<script>&amp;</script>", "tab\there\nnew\rline\bback\fform",
		"\x00\x01\x1f\x7f", "café ☕ 日本", "line\u2028para\u2029", "bad\xffutf8\xc3", "\xed\xa0\x80",
	} {
		for _, ra := range []int64{0, 1, 300} {
			want := marshalErrorBody(t, spillway.ReasonBreakerOpen, s, "message "+s, ra)
			if got := string(appendErrorBody(nil, spillway.ReasonBreakerOpen, s, "message "+s, ra)); got != want {
				t.Errorf("upstream %q, retry after %d:\n got %s\nwant %s", s, ra, got, want)
			}
		}
	}
}

func FuzzAppendErrorBody(f *testing.F) {
	f.Add("catalog", "the upstream failed", int64(12))
	f.Add("<a&b>\u2028", "\xff\x00\"\\", int64(0))
	f.Fuzz(func(t *testing.T, upstream, msg string, retryAfter int64) {
		want := marshalErrorBody(t, spillway.ReasonUpstreamError, upstream, msg, retryAfter)
		if got := string(appendErrorBody(nil, spillway.ReasonUpstreamError, upstream, msg, retryAfter)); got != want {
			t.Errorf("got %s\nwant %s", got, want)
		}
	})
}
