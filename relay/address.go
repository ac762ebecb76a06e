package relay

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"net"
	"strconv"
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

// ParseAddress parses a relay address. The fingerprint is taken in any
// letter case and kept in the canonical lowercase form that Fingerprint
// gives, which is what the client compares; a fingerprint that would not
// come out of Fingerprint (wrong length, other characters, non-zero
// padding bits) is refused, since it could never match.
func ParseAddress(s string) (Address, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !strings.EqualFold(scheme, "tainik") {
		return Address{}, errors.New("relay: address must start with tainik://")
	}
	var a Address
	if fp, hp, ok := strings.Cut(rest, "@"); ok {
		fp = strings.ToLower(fp)
		raw, err := fpEncoding.DecodeString(strings.ToUpper(fp))
		if err != nil || len(raw) != sha256.Size || strings.ToLower(fpEncoding.EncodeToString(raw)) != fp {
			return Address{}, errors.New("relay: bad key fingerprint in address (52 characters a-z, 2-7, as the relay printed it)")
		}
		a.Fingerprint, rest = fp, hp
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil || host == "" || strings.ContainsAny(host, "@/% \t\r\n") {
		return Address{}, errors.New("relay: address needs host:port after the fingerprint")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return Address{}, errors.New("relay: address has no valid port (1 to 65535)")
	}
	a.HostPort = rest
	return a, nil
}
