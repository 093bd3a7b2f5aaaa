// Package adminclient calls the gateway's admin API (/api/v1/...) with a
// bearer token: the one client of `spillway ctl`, `spillway map --admin`,
// `spillway drill --gateway` and the demo's fault loop.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// MaxAnswer bounds the answer Call reads (the runtime API's largest answer,
// every upstream with its live figures, is far smaller).
const MaxAnswer = 16 << 20

// Client is the admin API at URL, called with Token (none when empty).
type Client struct {
	URL   string
	Token string
	// HTTP sends the requests; http.DefaultClient when nil.
	HTTP *http.Client
}

// Error is an error answer of the admin API: its status and the brief's
// body {"error":{"field":...,"message":...}} (Message is the status line
// when the body is not that).
type Error struct {
	Method, Path   string
	Code           int
	Status         string
	Field, Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s %s: %s: %s: %s", e.Method, e.Path, e.Status, e.Field, e.Message)
	}
	return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, e.Status, e.Message)
}

// Send sends method path with body — a []byte as it is (nil: none), any
// other non-nil value marshalled to JSON — the token and hdr, and returns the answer
// whatever its status. The caller closes its body.
func (c *Client) Send(ctx context.Context, method, path string, body any, hdr http.Header) (*http.Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		if b != nil {
			r = bytes.NewReader(b)
		}
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, r)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
}

// Call sends method path with body (as Send) and returns a 2xx answer's
// body, or an *Error for any other status. A transport failure is the
// HTTP client's error, which names the URL and never the token.
func (c *Client) Call(ctx context.Context, method, path string, body any) ([]byte, error) {
	resp, err := c.Send(ctx, method, path, body, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, refusal(resp, b)
	}
	return b, nil
}

// Refused returns nil for a 2xx answer, else the *Error it is, reading at
// most MaxAnswer of its body.
func Refused(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	return refusal(resp, b)
}

func refusal(resp *http.Response, body []byte) *Error {
	var e struct {
		Error struct{ Field, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		e.Error.Message = "the admin API answered " + resp.Status
	}
	return &Error{Method: resp.Request.Method, Path: resp.Request.URL.Path, Code: resp.StatusCode, Status: resp.Status,
		Field: e.Error.Field, Message: e.Error.Message}
}

// Do is Call decoding the answer into out (nothing when out is nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	b, err := c.Call(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}
