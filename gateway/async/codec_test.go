package async

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestStoredRequestRoundTrip(t *testing.T) {
	r := httptest.NewRequest("PUT", "/a%2Fb/c?q=1&r", strings.NewReader("body\x00"))
	r.Header.Set("X-A", "1")
	r.Header.Add("X-A", "2")
	r.Header.Set("Connection", "keep-alive, X-Hop")
	r.Header.Set("X-Hop", "no")
	r.Header.Set("Proxy-Foo", "no")
	r.Header.Set("Te", "trailers")
	b, err := encodeRequest(nil, r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := DecodeStoredRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &StoredRequest{Method: "PUT", Path: "/a%2Fb/c", RawQuery: "q=1&r", Host: "example.com", RemoteAddr: "192.0.2.1:1234",
		Scheme: "http", Header: http.Header{"X-A": {"1", "2"}}, Body: []byte("body\x00")}
	if !reflect.DeepEqual(sr, want) {
		t.Errorf("got  %+v\nwant %+v", sr, want)
	}
	if _, err := encodeRequest(nil, httptest.NewRequest("POST", "/", strings.NewReader("12345")), 4); err != errBodyTooLarge {
		t.Errorf("over the limit: %v", err)
	}
}

func FuzzDecodeStoredRequest(f *testing.F) {
	r := httptest.NewRequest("POST", "/x?y", bytes.NewReader([]byte("z")))
	r.Header.Set("A", "b")
	b, _ := encodeRequest(nil, r, 10)
	f.Add(b)
	f.Add([]byte{jobFormat, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := DecodeStoredRequest(data)
		if (err == nil) == (sr == nil) {
			t.Fatalf("%v and %v", sr, err)
		}
	})
}
