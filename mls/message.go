package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// wireCodec is what every wire structure of the package implements.
//
// Decoders accept only the canonical encoding (minimal length prefixes,
// presence bytes of 0 or 1, known code points where the body depends on
// them, no trailing bytes), so re-encoding a decoded value reproduces its
// input byte for byte: a TBS method of a decoded LeafNode, KeyPackage or
// GroupInfo returns exactly the bytes its signer signed.
type wireCodec interface {
	marshal(b *cryptobyte.Builder)
	unmarshal(s *cryptobyte.String) bool
}

// MLSMessage is the envelope of every message MLS sends: exactly the field
// that WireFormat names is set. See RFC 9420, Section 6.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// body returns the encoder and decoder of the field that WireFormat names,
// or nil when that field is unset and create is false, or WireFormat is
// unknown. With create, an unset field is allocated first, for decoding.
func (m *MLSMessage) body(create bool) wireCodec {
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage == nil && create {
			m.PublicMessage = new(PublicMessage)
		}
		if m.PublicMessage != nil {
			return m.PublicMessage
		}
	case WireFormatPrivateMessage:
		if m.PrivateMessage == nil && create {
			m.PrivateMessage = new(PrivateMessage)
		}
		if m.PrivateMessage != nil {
			return m.PrivateMessage
		}
	case WireFormatWelcome:
		if m.Welcome == nil && create {
			m.Welcome = new(Welcome)
		}
		if m.Welcome != nil {
			return m.Welcome
		}
	case WireFormatGroupInfo:
		if m.GroupInfo == nil && create {
			m.GroupInfo = new(GroupInfo)
		}
		if m.GroupInfo != nil {
			return m.GroupInfo
		}
	case WireFormatKeyPackage:
		if m.KeyPackage == nil && create {
			m.KeyPackage = new(KeyPackage)
		}
		if m.KeyPackage != nil {
			return m.KeyPackage
		}
	}
	return nil
}

func (m *MLSMessage) marshal(b *cryptobyte.Builder) {
	if m.Version != ProtocolMLS10 {
		b.SetError(fmt.Errorf("mls: cannot encode MLSMessage of version %d", m.Version))
		return
	}
	body := m.body(false)
	if body == nil {
		b.SetError(fmt.Errorf("mls: cannot encode MLSMessage of wire format 0x%04x without its body", uint16(m.WireFormat)))
		return
	}
	b.AddUint16(uint16(m.Version))
	b.AddUint16(uint16(m.WireFormat))
	body.marshal(b)
}

// unmarshal reads an MLSMessage, refusing versions other than mls10 and
// unknown wire formats.
func (m *MLSMessage) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint16((*uint16)(&m.Version)) || m.Version != ProtocolMLS10 ||
		!s.ReadUint16((*uint16)(&m.WireFormat)) {
		return false
	}
	body := m.body(true)
	return body != nil && body.unmarshal(s)
}

// Marshal returns the TLS encoding of the MLSMessage.
func (m *MLSMessage) Marshal() ([]byte, error) { return marshal(m.marshal) }

// UnmarshalMLSMessage decodes an MLSMessage, rejecting trailing bytes,
// versions other than mls10 and unknown wire formats.
func UnmarshalMLSMessage(data []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := unmarshal(data, "MLSMessage", m.unmarshal); err != nil {
		return nil, err
	}
	return m, nil
}
