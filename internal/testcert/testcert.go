// Package testcert makes throw-away TLS certificates at run time, for tests
// and for development servers: a CA and a server certificate for localhost,
// 127.0.0.1 and ::1, valid for 30 days.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// Pair holds a server configuration presenting a certificate signed by a
// fresh CA, and a client configuration trusting only that CA.
type Pair struct {
	Server *tls.Config
	Client *tls.Config
	CAPool *x509.CertPool
	// CAPEM is the CA certificate in PEM, for clients in other processes.
	CAPEM []byte
	// CertPEM and KeyPEM are the server's certificate and private key in
	// PEM, to keep the same certificate across restarts.
	CertPEM, KeyPEM []byte
}

const validity = 30 * 24 * time.Hour

// New returns a fresh [Pair]. It panics on failure, which only a broken
// crypto/rand can cause.
func New() Pair {
	caKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "msgtrans test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey))
	ca := must(x509.ParseCertificate(caDER))

	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der := must(x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return Pair{
		Server:  &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		Client:  &tls.Config{RootCAs: pool},
		CAPool:  pool,
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: must(x509.MarshalECPrivateKey(key))}),
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic("testcert: " + err.Error())
	}
	return v
}
