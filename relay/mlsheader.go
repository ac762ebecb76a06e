package relay

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// MLS wire formats and content types the relay reads. See RFC 9420,
// Section 6.
const (
	WireFormatPublicMessage  = 1
	WireFormatPrivateMessage = 2

	ContentTypeApplication = 1
	ContentTypeProposal    = 2
	ContentTypeCommit      = 3
)

// MLSHeader is the cleartext part of an MLSMessage the relay needs to order a
// group log. The relay never imports the mls package; it reads only these
// fields.
type MLSHeader struct {
	WireFormat  uint16
	GroupID     []byte
	Epoch       uint64
	ContentType uint8
}

var errMLSHeader = errors.New("relay: malformed MLS message header")

// ParseMLSHeader reads the header of a PublicMessage or PrivateMessage. It
// is strict: version must be mls10, variable-length integers must be
// minimally encoded, and sender and content types must be known. Bytes after
// the header are not examined.
//
// See RFC 9420, Sections 6, 6.2 and 6.3.
func ParseMLSHeader(msg []byte) (MLSHeader, error) {
	s := cryptobyte.String(msg)
	var h MLSHeader
	var version uint16
	if !s.ReadUint16(&version) || version != 1 || !s.ReadUint16(&h.WireFormat) {
		return MLSHeader{}, errMLSHeader
	}
	switch h.WireFormat {
	case WireFormatPublicMessage:
		// FramedContent: group_id, epoch, sender, authenticated_data, content_type.
		var sender uint8
		var ad []byte
		if !readOpaqueV(&s, &h.GroupID) || !s.ReadUint64(&h.Epoch) || !s.ReadUint8(&sender) {
			return MLSHeader{}, errMLSHeader
		}
		switch sender {
		case 1, 2: // member leaf_index, external sender_index
			var idx uint32
			if !s.ReadUint32(&idx) {
				return MLSHeader{}, errMLSHeader
			}
		case 3, 4: // new_member_proposal, new_member_commit
		default:
			return MLSHeader{}, errMLSHeader
		}
		if !readOpaqueV(&s, &ad) || !s.ReadUint8(&h.ContentType) {
			return MLSHeader{}, errMLSHeader
		}
		// RFC 9420 Section 6: application messages are always
		// PrivateMessage; an external sender and a new member proposing
		// send proposals, a new member joining sends its commit.
		switch {
		case h.ContentType == ContentTypeApplication,
			(sender == 2 || sender == 3) && h.ContentType != ContentTypeProposal,
			sender == 4 && h.ContentType != ContentTypeCommit:
			return MLSHeader{}, errMLSHeader
		}
	case WireFormatPrivateMessage:
		if !readOpaqueV(&s, &h.GroupID) || !s.ReadUint64(&h.Epoch) || !s.ReadUint8(&h.ContentType) {
			return MLSHeader{}, errMLSHeader
		}
	default:
		return MLSHeader{}, errMLSHeader
	}
	if h.ContentType < ContentTypeApplication || h.ContentType > ContentTypeCommit {
		return MLSHeader{}, errMLSHeader
	}
	return h, nil
}

// readVarint reads an MLS variable-length integer. See RFC 9420,
// Section 2.1.2.
func readVarint(s *cryptobyte.String, out *uint32) bool {
	var b0 uint8
	if !s.ReadUint8(&b0) {
		return false
	}
	v := uint32(b0 & 0x3f)
	switch b0 >> 6 {
	case 0:
	case 1:
		var b uint8
		if !s.ReadUint8(&b) {
			return false
		}
		v = v<<8 | uint32(b)
		if v < 1<<6 {
			return false
		}
	case 2:
		var rest []byte
		if !s.ReadBytes(&rest, 3) {
			return false
		}
		v = v<<24 | uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
		if v < 1<<14 {
			return false
		}
	default:
		return false
	}
	*out = v
	return true
}

// readOpaqueV reads an opaque<V> vector.
func readOpaqueV(s *cryptobyte.String, out *[]byte) bool {
	var n uint32
	if !readVarint(s, &n) {
		return false
	}
	if !s.ReadBytes(out, int(n)) {
		return false
	}
	*out = (*out)[:n:n] // it aliases the message: no append may reach past it
	return true
}

// AppendVarint appends an MLS variable-length integer; it is exported for
// tests and tools that build MLS headers by hand.
func AppendVarint(b []byte, v uint32) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	panic("relay: varint out of range")
}
