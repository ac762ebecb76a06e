package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ProposalType is an MLS proposal type code point. See RFC 9420,
// Section 17.4.
type ProposalType uint16

// The proposal types of RFC 9420, Section 17.4.
const (
	ProposalTypeAdd                    ProposalType = 0x0001
	ProposalTypeUpdate                 ProposalType = 0x0002
	ProposalTypeRemove                 ProposalType = 0x0003
	ProposalTypePSK                    ProposalType = 0x0004
	ProposalTypeReInit                 ProposalType = 0x0005
	ProposalTypeExternalInit           ProposalType = 0x0006
	ProposalTypeGroupContextExtensions ProposalType = 0x0007
)

// AddProposal adds the member that KeyPackage describes. See RFC 9420,
// Section 12.1.1.
type AddProposal struct {
	KeyPackage KeyPackage
}

func (p *AddProposal) marshal(b *cryptobyte.Builder)       { p.KeyPackage.marshal(b) }
func (p *AddProposal) unmarshal(s *cryptobyte.String) bool { return p.KeyPackage.unmarshal(s) }

// UpdateProposal replaces the sender's leaf node. See RFC 9420,
// Section 12.1.2.
type UpdateProposal struct {
	LeafNode LeafNode
}

func (p *UpdateProposal) marshal(b *cryptobyte.Builder)       { p.LeafNode.marshal(b) }
func (p *UpdateProposal) unmarshal(s *cryptobyte.String) bool { return p.LeafNode.unmarshal(s) }

// RemoveProposal removes the member at leaf Removed. See RFC 9420,
// Section 12.1.3.
type RemoveProposal struct {
	Removed LeafIndex
}

func (p *RemoveProposal) marshal(b *cryptobyte.Builder) { b.AddUint32(uint32(p.Removed)) }
func (p *RemoveProposal) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint32((*uint32)(&p.Removed))
}

// PreSharedKeyProposal injects the PSK that PSK names into the next epoch's
// key schedule. See RFC 9420, Section 12.1.4.
type PreSharedKeyProposal struct {
	PSK PreSharedKeyID
}

func (p *PreSharedKeyProposal) marshal(b *cryptobyte.Builder)       { p.PSK.marshal(b) }
func (p *PreSharedKeyProposal) unmarshal(s *cryptobyte.String) bool { return p.PSK.unmarshal(s) }

// ReInitProposal closes the group in favour of a new one with the given
// parameters. See RFC 9420, Section 12.1.5.
type ReInitProposal struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

func (p *ReInitProposal) marshal(b *cryptobyte.Builder) {
	addOpaque(b, p.GroupID)
	b.AddUint16(uint16(p.Version))
	b.AddUint16(uint16(p.CipherSuite))
	p.Extensions.marshal(b)
}

func (p *ReInitProposal) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &p.GroupID) &&
		s.ReadUint16((*uint16)(&p.Version)) &&
		s.ReadUint16((*uint16)(&p.CipherSuite)) &&
		p.Extensions.unmarshal(s)
}

// ExternalInitProposal carries the KEM output from which an external joiner
// derives the next init_secret. See RFC 9420, Section 12.1.6.
type ExternalInitProposal struct {
	KEMOutput []byte
}

func (p *ExternalInitProposal) marshal(b *cryptobyte.Builder) { addOpaque(b, p.KEMOutput) }
func (p *ExternalInitProposal) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &p.KEMOutput)
}

// GroupContextExtensionsProposal replaces the GroupContext's extensions. See
// RFC 9420, Section 12.1.7.
type GroupContextExtensionsProposal struct {
	Extensions Extensions
}

func (p *GroupContextExtensionsProposal) marshal(b *cryptobyte.Builder) { p.Extensions.marshal(b) }
func (p *GroupContextExtensionsProposal) unmarshal(s *cryptobyte.String) bool {
	return p.Extensions.unmarshal(s)
}

// Proposal is a proposed change to the group: exactly the field that Type
// names is set. See RFC 9420, Section 12.1.
//
// Proposal types this package does not know cannot be decoded: their body
// has no length prefix.
type Proposal struct {
	Type                   ProposalType
	Add                    *AddProposal
	Update                 *UpdateProposal
	Remove                 *RemoveProposal
	PreSharedKey           *PreSharedKeyProposal
	ReInit                 *ReInitProposal
	ExternalInit           *ExternalInitProposal
	GroupContextExtensions *GroupContextExtensionsProposal
}

// body returns the encoder and decoder of the field that Type names, or nil
// when that field is unset and create is false, or Type is unknown. With
// create, an unset field is allocated first, for decoding.
func (p *Proposal) body(create bool) wireCodec {
	switch p.Type {
	case ProposalTypeAdd:
		if p.Add == nil && create {
			p.Add = new(AddProposal)
		}
		if p.Add != nil {
			return p.Add
		}
	case ProposalTypeUpdate:
		if p.Update == nil && create {
			p.Update = new(UpdateProposal)
		}
		if p.Update != nil {
			return p.Update
		}
	case ProposalTypeRemove:
		if p.Remove == nil && create {
			p.Remove = new(RemoveProposal)
		}
		if p.Remove != nil {
			return p.Remove
		}
	case ProposalTypePSK:
		if p.PreSharedKey == nil && create {
			p.PreSharedKey = new(PreSharedKeyProposal)
		}
		if p.PreSharedKey != nil {
			return p.PreSharedKey
		}
	case ProposalTypeReInit:
		if p.ReInit == nil && create {
			p.ReInit = new(ReInitProposal)
		}
		if p.ReInit != nil {
			return p.ReInit
		}
	case ProposalTypeExternalInit:
		if p.ExternalInit == nil && create {
			p.ExternalInit = new(ExternalInitProposal)
		}
		if p.ExternalInit != nil {
			return p.ExternalInit
		}
	case ProposalTypeGroupContextExtensions:
		if p.GroupContextExtensions == nil && create {
			p.GroupContextExtensions = new(GroupContextExtensionsProposal)
		}
		if p.GroupContextExtensions != nil {
			return p.GroupContextExtensions
		}
	}
	return nil
}

func (p *Proposal) marshal(b *cryptobyte.Builder) {
	body := p.body(false)
	if body == nil {
		b.SetError(fmt.Errorf("mls: cannot encode Proposal of type 0x%04x without its body", uint16(p.Type)))
		return
	}
	b.AddUint16(uint16(p.Type))
	body.marshal(b)
}

func (p *Proposal) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint16((*uint16)(&p.Type)) {
		return false
	}
	body := p.body(true)
	return body != nil && body.unmarshal(s)
}

// Marshal returns the TLS encoding of the Proposal.
func (p *Proposal) Marshal() ([]byte, error) { return marshal(p.marshal) }

// UnmarshalProposal decodes a Proposal, rejecting trailing bytes and unknown
// proposal types.
func UnmarshalProposal(data []byte) (*Proposal, error) {
	p := new(Proposal)
	if err := unmarshal(data, "Proposal", p.unmarshal); err != nil {
		return nil, err
	}
	return p, nil
}

// ProposalOrRefType says whether a Commit carries a proposal by value or by
// reference. See RFC 9420, Section 12.4.
type ProposalOrRefType uint8

// The ProposalOrRef types of RFC 9420, Section 12.4.
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is one proposal a Commit covers: the Proposal itself when
// Type is ProposalOrRefProposal, or the ProposalRef of a proposal sent
// earlier in the epoch when it is ProposalOrRefReference. See RFC 9420,
// Section 12.4.
type ProposalOrRef struct {
	Type     ProposalOrRefType
	Proposal *Proposal
	// Reference is a ProposalRef: RefHash("MLS 1.0 Proposal Reference",
	// AuthenticatedContent) of the message that carried the proposal.
	Reference []byte
}

func (p *ProposalOrRef) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefProposal:
		if p.Proposal == nil {
			b.SetError(fmt.Errorf("mls: cannot encode ProposalOrRef without its proposal"))
			return
		}
		p.Proposal.marshal(b)
	case ProposalOrRefReference:
		addOpaque(b, p.Reference)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode ProposalOrRef of unknown type %d", p.Type))
	}
}

func (p *ProposalOrRef) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint8((*uint8)(&p.Type)) {
		return false
	}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		return p.Proposal.unmarshal(s)
	case ProposalOrRefReference:
		return readOpaqueCopy(s, &p.Reference)
	}
	return false
}
