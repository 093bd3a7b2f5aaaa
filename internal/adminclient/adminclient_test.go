package adminclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/adminclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The token and the JSON body go out; a 2xx answer decodes; a refusal is
// an *Error with the brief's field and message; a non-JSON refusal says
// its status.
func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/echo":
			if r.Header.Get("Content-Type") != "application/json" {
				http.Error(w, "no JSON", http.StatusUnsupportedMediaType)
				return
			}
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		case "/api/v1/refuse":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"field":"breaker.failure_rate","message":"want 0% to 100%"}}`)
		}
	}))
	defer srv.Close()
	c := &adminclient.Client{URL: srv.URL, Token: "t0ken"}
	ctx := context.Background()

	var out struct{ N int }
	if err := c.Do(ctx, http.MethodPost, "/api/v1/echo", map[string]int{"n": 7}, &out); err != nil || out.N != 7 {
		t.Errorf("a JSON value: %+v, %v", out, err)
	}
	if b, err := c.Call(ctx, http.MethodPost, "/api/v1/echo", []byte(`{"n":8}`)); err != nil || string(b) != `{"n":8}` {
		t.Errorf("raw bytes: %q, %v", b, err)
	}

	var ae *adminclient.Error
	err := c.Do(ctx, http.MethodPatch, "/api/v1/refuse", nil, nil)
	if !errors.As(err, &ae) || ae.Code != 400 || ae.Field != "breaker.failure_rate" || ae.Message != "want 0% to 100%" || ae.Method != "PATCH" {
		t.Errorf("a refusal: %#v (%v)", ae, err)
	}
	c.Token = "wrong"
	if err := c.Do(ctx, http.MethodGet, "/api/v1/echo", nil, nil); !errors.As(err, &ae) || ae.Code != 401 || ae.Message != "the admin API answered 401 Unauthorized" {
		t.Errorf("a refusal without a JSON body: %v", err)
	}
}
