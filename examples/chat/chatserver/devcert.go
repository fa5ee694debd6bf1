package chatserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/msgtrans/msgtrans-go/internal/testcert"
)

// The files of a development certificate in [Config.DevCertDir].
const (
	devCAFile   = "ca.pem"
	devCertFile = "cert.pem"
	devKeyFile  = "key.pem"
)

// devCertificate returns the development certificate kept in dir when it
// is there and valid for at least another day, and otherwise makes a new
// one (testcert builds exactly what is needed: a throw-away CA and a
// certificate for localhost, 127.0.0.1 and ::1) and keeps it there. With an
// empty dir it always makes a new one and keeps nothing.
func devCertificate(dir string) (cfg *tls.Config, reused bool, err error) {
	if dir != "" {
		if cert, err := tls.LoadX509KeyPair(filepath.Join(dir, devCertFile), filepath.Join(dir, devKeyFile)); err == nil {
			if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil && time.Until(leaf.NotAfter) > 24*time.Hour {
				return &tls.Config{Certificates: []tls.Certificate{cert}}, true, nil
			}
		}
	}
	dev := testcert.New()
	if dir == "" {
		return dev.Server, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("chatserver: development certificate: %w", err)
	}
	for name, data := range map[string][]byte{devCAFile: dev.CAPEM, devCertFile: dev.CertPEM, devKeyFile: dev.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, false, fmt.Errorf("chatserver: development certificate: %w", err)
		}
	}
	return dev.Server, false, nil
}
