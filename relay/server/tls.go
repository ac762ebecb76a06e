package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// keyFile is the relay's identity key in the data directory. Its public key
// is what clients pin.
const keyFile = "relay.key"

// loadOrCreateCert reads the relay key from dir (creating it on first start)
// and wraps it in a fresh self-signed certificate. Clients check the key,
// not the certificate, so the certificate need not persist.
func loadOrCreateCert(dir string) (tls.Certificate, *x509.Certificate, error) {
	path := filepath.Join(dir, keyFile)
	var key ed25519.PrivateKey
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "PRIVATE KEY" {
			return tls.Certificate{}, nil, fmt.Errorf("relay: %s is not a PEM private key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("relay: parsing %s: %w", path, err)
		}
		var ok bool
		if key, ok = k.(ed25519.PrivateKey); !ok {
			return tls.Certificate{}, nil, fmt.Errorf("relay: %s is not an Ed25519 key", path)
		}
	case errors.Is(err, os.ErrNotExist):
		_, key, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("relay: %w", err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("relay: writing key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("relay: writing key: %w", err)
		}
	default:
		return tls.Certificate{}, nil, fmt.Errorf("relay: reading key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tainik relay"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(20 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("relay: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}
