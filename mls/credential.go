package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// CredentialType is an MLS credential type code point. See RFC 9420,
// Section 17.5.
type CredentialType uint16

// The credential types of RFC 9420, Section 17.5.
const (
	CredentialBasic CredentialType = 0x0001
	CredentialX509  CredentialType = 0x0002
)

// Credential binds an identity to a member's signature key. See RFC 9420,
// Section 5.3.
//
// Only the basic and x509 types can be decoded: the body of any other type
// carries no length prefix, so its end cannot be found without knowing its
// structure.
type Credential struct {
	Type CredentialType
	// Identity is the application-defined identity of a basic credential.
	Identity []byte
	// Certificates is the DER certificate chain of an x509 credential,
	// end-entity certificate first.
	Certificates [][]byte
}

func (c *Credential) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		addOpaque(b, c.Identity)
	case CredentialX509:
		addVector(b, func(b *cryptobyte.Builder) {
			for _, cert := range c.Certificates {
				addOpaque(b, cert)
			}
		})
	default:
		b.SetError(fmt.Errorf("mls: cannot encode credential of unknown type 0x%04x", uint16(c.Type)))
	}
}

// unmarshal reads a Credential, refusing types whose body it cannot frame.
func (c *Credential) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint16((*uint16)(&c.Type)) {
		return false
	}
	switch c.Type {
	case CredentialBasic:
		return readOpaqueCopy(s, &c.Identity)
	case CredentialX509:
		c.Certificates = [][]byte{}
		return readVectorOf(s, func(s *cryptobyte.String) bool {
			var cert []byte
			if !readOpaqueCopy(s, &cert) {
				return false
			}
			c.Certificates = append(c.Certificates, cert)
			return true
		})
	}
	return false
}

// Marshal returns the TLS encoding of the Credential.
func (c *Credential) Marshal() ([]byte, error) { return marshal(c.marshal) }

// UnmarshalCredential decodes a Credential, rejecting trailing bytes and
// credential types other than basic and x509.
func UnmarshalCredential(data []byte) (*Credential, error) {
	c := new(Credential)
	if len(data) >= 2 {
		if t := CredentialType(uint16(data[0])<<8 | uint16(data[1])); t != CredentialBasic && t != CredentialX509 {
			return nil, &ParseError{What: "Credential", Reason: fmt.Sprintf("unknown credential type 0x%04x", uint16(t))}
		}
	}
	if err := unmarshal(data, "Credential", c.unmarshal); err != nil {
		return nil, err
	}
	return c, nil
}
