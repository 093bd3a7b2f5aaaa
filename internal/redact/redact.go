// Package redact hides the secrets a configured URL may carry, for logs
// and error messages.
package redact

import "strings"

// URL hides the user information of a URL, user and password alike (a
// token may stand in the user's place): nats://user:pass@host:4222
// becomes nats://REDACTED@host:4222. Everything between the scheme and
// the last '@' is hidden, so that a URL that does not parse (a password
// with a '/' or a '#') is hidden too.
func URL(s string) string {
	start, at := UserInfo(s)
	if at < 0 {
		return s
	}
	return s[:start] + "REDACTED" + s[at:]
}

// UserInfo returns where the user information of URL s starts and where
// it ends (its '@'); at is -1 when s has none.
func UserInfo(s string) (start, at int) {
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	at = strings.LastIndex(s[start:], "@")
	if at < 0 {
		return start, -1
	}
	return start, start + at
}
