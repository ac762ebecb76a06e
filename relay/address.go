package relay

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"net"
	"strings"
)

var fpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Fingerprint returns the relay key fingerprint: SHA-256 over the DER
// SubjectPublicKeyInfo of the relay's TLS key, in lowercase unpadded base32.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return strings.ToLower(fpEncoding.EncodeToString(sum[:]))
}

// Address is a parsed relay address, tainik://<fingerprint>@host:port. An
// address without a fingerprint (tainik://host:port) is verified against
// the system's certificate authorities, for relays with ACME certificates.
type Address struct {
	Fingerprint string
	HostPort    string
}

func (a Address) String() string {
	if a.Fingerprint == "" {
		return "tainik://" + a.HostPort
	}
	return "tainik://" + a.Fingerprint + "@" + a.HostPort
}

// ParseAddress parses a relay address.
func ParseAddress(s string) (Address, error) {
	rest, ok := strings.CutPrefix(s, "tainik://")
	if !ok {
		return Address{}, errors.New("relay: address must start with tainik://")
	}
	var a Address
	if fp, hp, ok := strings.Cut(rest, "@"); ok {
		raw, err := fpEncoding.DecodeString(strings.ToUpper(fp))
		if err != nil || len(raw) != sha256.Size {
			return Address{}, errors.New("relay: bad key fingerprint in address")
		}
		a.Fingerprint, rest = fp, hp
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return Address{}, errors.New("relay: address needs host:port")
	}
	a.HostPort = rest
	return a, nil
}
