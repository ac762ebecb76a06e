package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ExtensionType is an MLS extension code point. See RFC 9420, Section 17.3.
type ExtensionType uint16

// The extension types of RFC 9420, Section 17.3.
const (
	ExtensionApplicationID        ExtensionType = 0x0001
	ExtensionRatchetTree          ExtensionType = 0x0002
	ExtensionRequiredCapabilities ExtensionType = 0x0003
	ExtensionExternalPub          ExtensionType = 0x0004
	ExtensionExternalSenders      ExtensionType = 0x0005
)

// Extension is one extension of a GroupContext, KeyPackage, LeafNode or
// GroupInfo. See RFC 9420, Section 13.4.
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Extensions is a list of extensions in which each type appears at most
// once; the decoder rejects duplicates.
type Extensions []Extension

// Find returns the data of the extension of type t, if present.
func (e Extensions) Find(t ExtensionType) ([]byte, bool) {
	for _, x := range e {
		if x.Type == t {
			return x.Data, true
		}
	}
	return nil, false
}

func (e Extensions) marshal(b *cryptobyte.Builder) {
	addVector(b, func(b *cryptobyte.Builder) {
		for _, x := range e {
			b.AddUint16(uint16(x.Type))
			addOpaque(b, x.Data)
		}
	})
}

// unmarshal reads extensions<V>, refusing a type that appears twice.
func (e *Extensions) unmarshal(s *cryptobyte.String) bool {
	var out Extensions
	seen := map[ExtensionType]bool{}
	ok := readVectorOf(s, func(s *cryptobyte.String) bool {
		var x Extension
		if !s.ReadUint16((*uint16)(&x.Type)) || !readOpaqueCopy(s, &x.Data) || seen[x.Type] {
			return false
		}
		seen[x.Type] = true
		out = append(out, x)
		return true
	})
	*e = out
	return ok
}

// validateUnique reports an error if an extension type appears twice, for
// lists built by the application rather than parsed.
func (e Extensions) validateUnique() error {
	seen := map[ExtensionType]bool{}
	for _, x := range e {
		if seen[x.Type] {
			return fmt.Errorf("mls: duplicate extension type 0x%04x", uint16(x.Type))
		}
		seen[x.Type] = true
	}
	return nil
}
