package gateway

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// accessLine is one access-log record.
type accessLine struct {
	// time is the line's time: when the request ended, read once for the
	// duration and the line.
	time                          time.Time
	route, upstream, method, path string
	status                        int
	duration                      time.Duration
	attempts                      int
	outcome, reason, fallback     string
	fault                         string
	// grpcStatus is the grpc-status a gRPC call's client got, written as
	// grpc_status when grpcSent (sentGRPCStatus): gRPC calls only.
	grpcStatus codes.Code
	grpcSent   bool
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeAccessLine writes l as one JSON line in the shape of slog's
// JSONHandler (time, level, msg, then the fields), without slog's
// reflection and attribute copies: the access log runs once per request.
func writeAccessLine(w io.Writer, l accessLine) {
	bp := lineBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = appendTime(b, l.time)
	b = append(b, `","level":"INFO","msg":"request","route":`...)
	b = appendJSONString(b, l.route)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, l.upstream)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, l.method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, l.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, l.duration.Seconds(), 'g', -1, 64)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(l.attempts), 10)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, l.outcome)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, l.reason)
	b = append(b, `,"fallback":`...)
	b = appendJSONString(b, l.fallback)
	b = append(b, `,"fault":`...)
	b = appendJSONString(b, l.fault)
	if l.grpcSent {
		b = append(b, `,"grpc_status":`...)
		b = strconv.AppendUint(b, uint64(l.grpcStatus), 10)
	}
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
	*bp = b
	lineBuffers.Put(bp)
}

// stamp is a line time's text up to its second, and its zone: the lines of
// one second share them.
type stamp struct {
	sec        int64
	loc        *time.Location
	head, zone []byte
}

var lastStamp atomic.Pointer[stamp]

// appendTime appends t as time.RFC3339Nano does, formatting its date, time
// of day and zone once per second.
func appendTime(b []byte, t time.Time) []byte {
	s := lastStamp.Load()
	if s == nil || s.sec != t.Unix() || s.loc != t.Location() {
		// A zone's offset changes on a second's boundary, never inside one.
		s = &stamp{sec: t.Unix(), loc: t.Location(),
			head: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	b = append(b, s.head...)
	if ns := t.Nanosecond(); ns != 0 {
		// RFC3339Nano's ".999999999": the fraction, its trailing zeros cut.
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD, as
// encoding/json does (a request path is the client's and may hold anything).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	// Most values need no escape: copy them whole.
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, s...)
		return append(b, '"')
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
