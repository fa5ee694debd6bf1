package chatclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig returns the TLS configuration for the client's -ca and
// -insecure flags: verification against the CA certificates in the PEM file
// caFile; or no verification at all when insecure is set (for the server's
// development certificate only); or, when neither is given, nil, which
// verifies against the system roots.
func TLSConfig(caFile string, insecure bool) (*tls.Config, error) {
	switch {
	case caFile != "" && insecure:
		return nil, errors.New("chatclient: give a CA file or skip verification, not both")
	case insecure:
		// Asked for explicitly, to accept a development certificate.
		return &tls.Config{InsecureSkipVerify: true}, nil
	case caFile == "":
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("chatclient: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("chatclient: CA file %s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool}, nil
}
