package spillwaytest

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// Cert is a self-signed server certificate for 127.0.0.1, valid for an
// hour either side of now.
type Cert struct {
	DER  []byte
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
}

// LoopbackCert makes a Cert, failing t if it cannot.
func LoopbackCert(t testing.TB) Cert {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spillway-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	cert, der := createCert(t, tmpl, tmpl, key, key)
	return Cert{DER: der, Key: key, Cert: cert}
}

// TLS returns the certificate as a tls.Certificate for a server.
func (c Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: c.Key}
}

// Roots returns a pool that trusts the certificate.
func (c Cert) Roots() *x509.CertPool {
	roots := x509.NewCertPool()
	roots.AddCert(c.Cert)
	return roots
}
