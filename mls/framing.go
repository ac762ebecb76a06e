package mls

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// WireFormat says which kind of message an MLSMessage carries. See RFC 9420,
// Section 6 and Section 17.2.
type WireFormat uint16

// The wire formats of RFC 9420, Section 17.2.
const (
	WireFormatPublicMessage  WireFormat = 0x0001
	WireFormatPrivateMessage WireFormat = 0x0002
	WireFormatWelcome        WireFormat = 0x0003
	WireFormatGroupInfo      WireFormat = 0x0004
	WireFormatKeyPackage     WireFormat = 0x0005
)

// ContentType says what a FramedContent carries. See RFC 9420, Section 6.
type ContentType uint8

// The content types of RFC 9420, Section 6.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func (ct ContentType) known() bool {
	return ct >= ContentTypeApplication && ct <= ContentTypeCommit
}

// SenderType says who sent a message and so which key signs it. See
// RFC 9420, Section 6.
type SenderType uint8

// The sender types of RFC 9420, Section 6.
const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// Sender identifies the sender of a message. See RFC 9420, Section 6.
type Sender struct {
	Type SenderType
	// Leaf is the sender's leaf when Type is SenderMember.
	Leaf LeafIndex
	// ExternalIndex is the sender's index in the external_senders extension
	// when Type is SenderExternal.
	ExternalIndex uint32
}

func (s *Sender) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		b.AddUint32(uint32(s.Leaf))
	case SenderExternal:
		b.AddUint32(s.ExternalIndex)
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		b.SetError(fmt.Errorf("mls: cannot encode Sender of unknown type %d", s.Type))
	}
}

func (s *Sender) unmarshal(str *cryptobyte.String) bool {
	if !str.ReadUint8((*uint8)(&s.Type)) {
		return false
	}
	switch s.Type {
	case SenderMember:
		return str.ReadUint32((*uint32)(&s.Leaf))
	case SenderExternal:
		return str.ReadUint32(&s.ExternalIndex)
	case SenderNewMemberProposal, SenderNewMemberCommit:
		return true
	}
	return false
}

// FramedContent is the content of a handshake or application message with
// the header that places it in a group and epoch. Exactly one of
// ApplicationData, Proposal and Commit is used, as ContentType says. See
// RFC 9420, Section 6.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

func (c *FramedContent) marshal(b *cryptobyte.Builder) {
	addOpaque(b, c.GroupID)
	b.AddUint64(c.Epoch)
	c.Sender.marshal(b)
	addOpaque(b, c.AuthenticatedData)
	b.AddUint8(uint8(c.ContentType))
	c.marshalContent(b)
}

func (c *FramedContent) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &c.GroupID) &&
		s.ReadUint64(&c.Epoch) &&
		c.Sender.unmarshal(s) &&
		readOpaqueCopy(s, &c.AuthenticatedData) &&
		s.ReadUint8((*uint8)(&c.ContentType)) &&
		c.unmarshalContent(s)
}

// marshalContent writes only the body that ContentType selects
// (application_data, proposal or commit), which PrivateMessageContent
// carries without the header. See RFC 9420, Section 6.3.1.
func (c *FramedContent) marshalContent(b *cryptobyte.Builder) {
	switch {
	case c.ContentType == ContentTypeApplication:
		addOpaque(b, c.ApplicationData)
	case c.ContentType == ContentTypeProposal && c.Proposal != nil:
		c.Proposal.marshal(b)
	case c.ContentType == ContentTypeCommit && c.Commit != nil:
		c.Commit.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode FramedContent of content type %d without its content", c.ContentType))
	}
}

// unmarshalContent reads the body that c.ContentType selects, refusing an
// unknown content type.
func (c *FramedContent) unmarshalContent(s *cryptobyte.String) bool {
	switch c.ContentType {
	case ContentTypeApplication:
		return readOpaqueCopy(s, &c.ApplicationData)
	case ContentTypeProposal:
		c.Proposal = new(Proposal)
		return c.Proposal.unmarshal(s)
	case ContentTypeCommit:
		c.Commit = new(Commit)
		return c.Commit.unmarshal(s)
	}
	return false
}

// FramedContentAuthData authenticates a FramedContent: the sender's
// signature and, for a commit, the confirmation tag. See RFC 9420,
// Section 6.1.
type FramedContentAuthData struct {
	Signature []byte
	// ConfirmationTag is present only when the content type is commit.
	ConfirmationTag []byte
}

func (a *FramedContentAuthData) marshal(b *cryptobyte.Builder, ct ContentType) {
	if !ct.known() {
		b.SetError(fmt.Errorf("mls: cannot encode FramedContentAuthData for unknown content type %d", ct))
		return
	}
	addOpaque(b, a.Signature)
	if ct == ContentTypeCommit {
		addOpaque(b, a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(s *cryptobyte.String, ct ContentType) bool {
	if !ct.known() || !readOpaqueCopy(s, &a.Signature) {
		return false
	}
	if ct == ContentTypeCommit {
		return readOpaqueCopy(s, &a.ConfirmationTag)
	}
	return true
}

// AuthenticatedContent is a FramedContent with its authentication data and
// the wire format it is sent in, the form in which the protocol processes
// messages. See RFC 9420, Section 6.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (a *AuthenticatedContent) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(a.WireFormat))
	a.Content.marshal(b)
	a.Auth.marshal(b, a.Content.ContentType)
}

func (a *AuthenticatedContent) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint16((*uint16)(&a.WireFormat)) &&
		a.Content.unmarshal(s) &&
		a.Auth.unmarshal(s, a.Content.ContentType)
}

// Marshal returns the TLS encoding of the AuthenticatedContent.
func (a *AuthenticatedContent) Marshal() ([]byte, error) { return marshal(a.marshal) }

// UnmarshalAuthenticatedContent decodes an AuthenticatedContent, rejecting
// trailing bytes.
func UnmarshalAuthenticatedContent(data []byte) (*AuthenticatedContent, error) {
	a := new(AuthenticatedContent)
	if err := unmarshal(data, "AuthenticatedContent", a.unmarshal); err != nil {
		return nil, err
	}
	return a, nil
}

// PublicMessage is a signed but unencrypted message. See RFC 9420,
// Section 6.2.
type PublicMessage struct {
	Content FramedContent
	Auth    FramedContentAuthData
	// MembershipTag is present if and only if the sender is a member.
	MembershipTag []byte
}

func (m *PublicMessage) marshal(b *cryptobyte.Builder) {
	m.Content.marshal(b)
	m.Auth.marshal(b, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		addOpaque(b, m.MembershipTag)
	} else if m.MembershipTag != nil {
		b.SetError(errors.New("mls: cannot encode a membership tag for a PublicMessage whose sender is not a member"))
	}
}

func (m *PublicMessage) unmarshal(s *cryptobyte.String) bool {
	if !m.Content.unmarshal(s) || !m.Auth.unmarshal(s, m.Content.ContentType) {
		return false
	}
	if m.Content.Sender.Type == SenderMember {
		return readOpaqueCopy(s, &m.MembershipTag)
	}
	return true
}

// Marshal returns the TLS encoding of the PublicMessage.
func (m *PublicMessage) Marshal() ([]byte, error) { return marshal(m.marshal) }

// UnmarshalPublicMessage decodes a PublicMessage, rejecting trailing bytes.
func UnmarshalPublicMessage(data []byte) (*PublicMessage, error) {
	m := new(PublicMessage)
	if err := unmarshal(data, "PublicMessage", m.unmarshal); err != nil {
		return nil, err
	}
	return m, nil
}

// PrivateMessage is a signed and encrypted message: Ciphertext encrypts a
// PrivateMessageContent and EncryptedSenderData the sender. See RFC 9420,
// Section 6.3.
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (m *PrivateMessage) marshal(b *cryptobyte.Builder) {
	if !m.ContentType.known() {
		b.SetError(fmt.Errorf("mls: cannot encode PrivateMessage of unknown content type %d", m.ContentType))
		return
	}
	addOpaque(b, m.GroupID)
	b.AddUint64(m.Epoch)
	b.AddUint8(uint8(m.ContentType))
	addOpaque(b, m.AuthenticatedData)
	addOpaque(b, m.EncryptedSenderData)
	addOpaque(b, m.Ciphertext)
}

func (m *PrivateMessage) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &m.GroupID) &&
		s.ReadUint64(&m.Epoch) &&
		s.ReadUint8((*uint8)(&m.ContentType)) && m.ContentType.known() &&
		readOpaqueCopy(s, &m.AuthenticatedData) &&
		readOpaqueCopy(s, &m.EncryptedSenderData) &&
		readOpaqueCopy(s, &m.Ciphertext)
}

// Marshal returns the TLS encoding of the PrivateMessage.
func (m *PrivateMessage) Marshal() ([]byte, error) { return marshal(m.marshal) }

// UnmarshalPrivateMessage decodes a PrivateMessage, rejecting trailing bytes
// and unknown content types.
func UnmarshalPrivateMessage(data []byte) (*PrivateMessage, error) {
	m := new(PrivateMessage)
	if err := unmarshal(data, "PrivateMessage", m.unmarshal); err != nil {
		return nil, err
	}
	return m, nil
}
