package server

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/spillway-dev/spillway/config"
)

// Options says where serve's configuration comes from: a file, or for a
// start with no file (`spillway serve --upstream URL`) the flags.
type Options struct {
	// File is the configuration file; SIGHUP and the admin reload re-read it.
	File string
	// Upstream, instead of File, runs one catch-all route to this URL with
	// the brief's defaults; there is then nothing to reload.
	Upstream string
	// Listen and Admin are, with Upstream, the public and admin addresses
	// (defaults 127.0.0.1:8080 and 127.0.0.1:9901).
	Listen, Admin string
	// Token is, with Upstream, the admin token; empty, one is generated and
	// printed once on stderr so that the operator can use the admin API.
	Token string
}

// flagsConfig is the configuration of a start with no file. The values
// are ${VAR}s that flagsEnv answers: expanded in each parsed value, a flag
// cannot change the file's structure whatever it holds.
const flagsConfig = `listen: "${LISTEN}"
admin: {listen: "${ADMIN}", token: "${TOKEN}"}
upstreams:
  app: {instances: ["${UPSTREAM}"]}
routes:
  - {name: app, upstream: app}
`

// source is where Run's configuration comes from.
type source struct {
	load func() (*config.Config, []config.Warning, error) // loads and checks it, again on reload
	name string                                           // the file, or flagsName, in messages
	// newToken is the admin token generated for a start with no file, to
	// be printed once.
	newToken string
}

// source returns how to load o's configuration: its file, or its flags
// with the token given or a new one.
func (o Options) source() (source, error) {
	if o.Upstream == "" {
		return source{load: func() (*config.Config, []config.Warning, error) { return LoadAndCheck(o.File) }, name: o.File}, nil
	}
	if o.File != "" {
		return source{}, errors.New("a configuration file and --upstream: choose one")
	}
	if err := CheckInstanceURL(o.Upstream); err != nil {
		return source{}, fmt.Errorf("--upstream: %w", err)
	}
	src := source{name: flagsName}
	token := o.Token
	if token == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		token = hex.EncodeToString(b)
		src.newToken = token
	}
	env := map[string]string{"LISTEN": cmp.Or(o.Listen, "127.0.0.1:8080"), "ADMIN": cmp.Or(o.Admin, "127.0.0.1:9901"), "TOKEN": token, "UPSTREAM": o.Upstream}
	src.load = func() (*config.Config, []config.Warning, error) {
		return check(config.Parse(flagsName, []byte(flagsConfig), func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	}
	return src, nil
}

// flagsName names the configuration of a start with no file in messages.
const flagsName = "--upstream"

// CheckInstanceURL reports whether s is what config accepts as an
// instance, so that a flag is refused with its own name (the configuration
// built from it would only show the YAML around it).
func CheckInstanceURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: want an http:// or https:// URL with a host and no query, fragment or user info", s)
	}
	return nil
}
