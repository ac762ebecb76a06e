package mls

import "golang.org/x/crypto/cryptobyte"

// ProtocolVersion is the MLS protocol version; this package speaks mls10.
type ProtocolVersion uint16

// ProtocolMLS10 is the only version RFC 9420 defines.
const ProtocolMLS10 ProtocolVersion = 1

// GroupContext is the summary of a group's state that every epoch's key
// schedule binds. See RFC 9420, Section 8.1.
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

func (gc *GroupContext) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(gc.Version))
	b.AddUint16(uint16(gc.CipherSuite))
	addOpaque(b, gc.GroupID)
	b.AddUint64(gc.Epoch)
	addOpaque(b, gc.TreeHash)
	addOpaque(b, gc.ConfirmedTranscriptHash)
	gc.Extensions.marshal(b)
}

func (gc *GroupContext) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint16((*uint16)(&gc.Version)) &&
		s.ReadUint16((*uint16)(&gc.CipherSuite)) &&
		readOpaqueCopy(s, &gc.GroupID) &&
		s.ReadUint64(&gc.Epoch) &&
		readOpaqueCopy(s, &gc.TreeHash) &&
		readOpaqueCopy(s, &gc.ConfirmedTranscriptHash) &&
		gc.Extensions.unmarshal(s)
}

// Marshal returns the TLS encoding of the GroupContext.
func (gc *GroupContext) Marshal() ([]byte, error) { return marshal(gc.marshal) }

// UnmarshalGroupContext decodes a GroupContext, rejecting trailing bytes.
func UnmarshalGroupContext(data []byte) (*GroupContext, error) {
	gc := new(GroupContext)
	if err := unmarshal(data, "GroupContext", gc.unmarshal); err != nil {
		return nil, err
	}
	return gc, nil
}
