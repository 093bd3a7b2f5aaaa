package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
)

// ClientConfig returns the TLS configuration of the connections to the
// upstream's instances, reading and parsing its files; nil t: nil (Go's
// defaults). The error names the key whose file failed. Load calls it
// once to check the files: validate and serve refuse the same ones.
func (t *UpstreamTLS) ClientConfig() (*tls.Config, error) {
	c, k, err := t.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return c, nil
}

// clientConfig is ClientConfig, its error without the key it names.
func (t *UpstreamTLS) clientConfig() (c *tls.Config, key string, err error) {
	if t == nil {
		return nil, "", nil
	}
	c = &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.MinVersion == "1.3" {
		c.MinVersion = tls.VersionTLS13
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, "ca_file", fmt.Errorf("cannot read %s: %v", t.CAFile, unwrapPathError(err))
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "ca_file", fmt.Errorf("%s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, "cert_file", fmt.Errorf("%s with key_file %s: %v", t.CertFile, t.KeyFile, unwrapPathError(err))
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, "", nil
}

// validateUpstreamTLS resolves the files of the upstream's tls: against
// the configuration file's directory and checks that they are read and
// parsed as the gateway will (ClientConfig), each error at its key.
func (d *decoder) validateUpstreamTLS(u *Upstream) {
	t := u.TLS
	if t == nil {
		return
	}
	up := "$.upstreams." + u.Name
	for _, p := range []*string{&t.CAFile, &t.CertFile, &t.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(d.dir, *p)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		p, pos := d.at(up, ".tls")
		d.errAt(pos, p, "upstreams.%s.tls: cert_file and key_file go together (a client certificate and its key)", u.Name)
		return
	}
	if _, k, err := t.clientConfig(); err != nil {
		p, pos := d.at(up, ".tls."+k)
		d.errAt(pos, p, "upstreams.%s.tls.%s: %v", u.Name, k, err)
	}
	if t.InsecureSkipVerify {
		p, pos := d.at(up, ".tls.insecure_skip_verify")
		d.warnAt(pos, p, "upstreams.%s.tls.insecure_skip_verify: the instances' certificates are not checked: anyone on the network path can read and change the traffic", u.Name)
	}
}
