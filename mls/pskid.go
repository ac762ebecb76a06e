package mls

import "golang.org/x/crypto/cryptobyte"

// PSKType says where a pre-shared key comes from. See RFC 9420, Section 8.4.
type PSKType uint8

// The PSK types of RFC 9420, Section 8.4.
const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage says what a resumption PSK is used for.
type ResumptionPSKUsage uint8

// The resumption PSK usages of RFC 9420, Section 8.4.
const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID names a PSK injected into the key schedule. See RFC 9420,
// Section 8.4.
type PreSharedKeyID struct {
	Type PSKType
	// ID names an external PSK.
	ID []byte
	// Usage, GroupID and Epoch name a resumption PSK.
	Usage   ResumptionPSKUsage
	GroupID []byte
	Epoch   uint64
	// Nonce is a fresh random value of the KDF's output size.
	Nonce []byte
}

func (p *PreSharedKeyID) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		addOpaque(b, p.ID)
	case PSKResumption:
		b.AddUint8(uint8(p.Usage))
		addOpaque(b, p.GroupID)
		b.AddUint64(p.Epoch)
	default:
		b.SetError(&ParseError{What: "PreSharedKeyID", Reason: "unknown psktype"})
	}
	addOpaque(b, p.Nonce)
}

func (p *PreSharedKeyID) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint8((*uint8)(&p.Type)) {
		return false
	}
	switch p.Type {
	case PSKExternal:
		if !readOpaqueCopy(s, &p.ID) {
			return false
		}
	case PSKResumption:
		if !s.ReadUint8((*uint8)(&p.Usage)) || p.Usage < ResumptionApplication || p.Usage > ResumptionBranch ||
			!readOpaqueCopy(s, &p.GroupID) || !s.ReadUint64(&p.Epoch) {
			return false
		}
	default:
		return false
	}
	return readOpaqueCopy(s, &p.Nonce)
}
