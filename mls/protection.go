package mls

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// This file is message protection, RFC 9420, Section 6: signing content,
// the membership tag of PublicMessage, and the two-layer encryption of
// PrivateMessage (content under the secret tree, sender data under the
// sender-data secret).

// Errors of unprotecting a message that callers branch on. Each is wrapped
// with the details of the message that caused it.
var (
	// ErrWrongGroup is returned for a message of another group.
	ErrWrongGroup = errors.New("mls: message belongs to another group")
	// ErrWrongEpoch is returned for a message of an epoch whose keys this
	// state does not hold; see EpochError for the numbers.
	ErrWrongEpoch = errors.New("mls: message is for another epoch")
	// ErrUnknownSender is returned when the sender is not a member the
	// message can come from.
	ErrUnknownSender = errors.New("mls: unknown sender")
	// ErrBadSignature is returned when a message's signature does not verify
	// under the sender's key.
	ErrBadSignature = errBadSignature
	// ErrBadMembershipTag is returned when a PublicMessage's membership tag is
	// wrong: it was not sent by a member of this epoch, or was altered.
	ErrBadMembershipTag = errors.New("mls: invalid membership tag")
	// ErrDecryption is returned when a PrivateMessage does not decrypt: it
	// was altered, or sealed with keys this member does not have.
	ErrDecryption = errors.New("mls: message does not decrypt")
)

// EpochError reports a message for an epoch other than the state's.
type EpochError struct {
	Got, Want uint64
}

func (e *EpochError) Error() string {
	return fmt.Sprintf("mls: message is for epoch %d, the group is at epoch %d", e.Got, e.Want)
}

func (e *EpochError) Unwrap() error { return ErrWrongEpoch }

// mac is the suite's MAC: HMAC over the suite's hash. See RFC 9420,
// Section 5.1 and Section 17.1.
func (cs CipherSuite) mac(key, data []byte) []byte {
	h := hmac.New(newHash(cs.mustParams().hash), key)
	h.Write(data)
	return h.Sum(nil)
}

// verifyMAC compares a received MAC with the expected one in constant time.
func (cs CipherSuite) verifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(cs.mac(key, data), tag)
}

// framedContentTBS encodes FramedContentTBS: what a content's signature
// covers. groupContext is the encoded GroupContext of the epoch, included for
// member and new_member_commit senders. See RFC 9420, Section 6.1.
func framedContentTBS(wf WireFormat, content *FramedContent, groupContext []byte) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		addFramedContentTBS(b, wf, content, groupContext)
	})
}

func addFramedContentTBS(b *cryptobyte.Builder, wf WireFormat, content *FramedContent, groupContext []byte) {
	b.AddUint16(uint16(ProtocolMLS10))
	b.AddUint16(uint16(wf))
	content.marshal(b)
	switch content.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
		if groupContext == nil {
			b.SetError(errors.New("mls: signing member content needs the group context"))
			return
		}
		b.AddBytes(groupContext)
	}
}

// SignContent signs a FramedContent for sending in wire format wf, returning
// the signature for FramedContentAuthData. See RFC 9420, Section 6.1.
func (cs CipherSuite) signContent(key *SignaturePrivateKey, wf WireFormat, content *FramedContent, groupContext []byte) ([]byte, error) {
	tbs, err := framedContentTBS(wf, content, groupContext)
	if err != nil {
		return nil, err
	}
	return cs.SignWithLabel(key, "FramedContentTBS", tbs)
}

// verifyContent checks the signature of an AuthenticatedContent with the
// sender's signature public key. See RFC 9420, Section 6.1.
func (cs CipherSuite) verifyContent(pub []byte, ac *AuthenticatedContent, groupContext []byte) error {
	tbs, err := framedContentTBS(ac.WireFormat, &ac.Content, groupContext)
	if err != nil {
		return err
	}
	return cs.VerifyWithLabel(pub, "FramedContentTBS", tbs, ac.Auth.Signature)
}

// epochProtection holds what one epoch needs to protect and unprotect
// messages: the encoded group context, the sender-data secret, the
// membership key and the secret tree.
type epochProtection struct {
	suite            CipherSuite
	groupID          []byte
	epoch            uint64
	groupContext     []byte
	senderDataSecret []byte
	membershipKey    []byte
	tree             *secretTree
}

// checkGroupEpoch refuses a message of another group or epoch.
func (p *epochProtection) checkGroupEpoch(groupID []byte, epoch uint64) error {
	if subtle.ConstantTimeCompare(groupID, p.groupID) != 1 {
		return ErrWrongGroup
	}
	if epoch != p.epoch {
		return &EpochError{Got: epoch, Want: p.epoch}
	}
	return nil
}

// membershipTag computes MAC(membership_key, AuthenticatedContentTBM).
// See RFC 9420, Section 6.2.
func (p *epochProtection) membershipTag(content *FramedContent, auth *FramedContentAuthData) ([]byte, error) {
	tbm, err := marshal(func(b *cryptobyte.Builder) {
		addFramedContentTBS(b, WireFormatPublicMessage, content, p.groupContext)
		auth.marshal(b, content.ContentType)
	})
	if err != nil {
		return nil, err
	}
	return p.suite.mac(p.membershipKey, tbm), nil
}

// protectPublic wraps signed content as a PublicMessage, adding the
// membership tag for member senders. Application data is never sent as a
// PublicMessage. See RFC 9420, Section 6.2.
func (p *epochProtection) protectPublic(ac *AuthenticatedContent) (*PublicMessage, error) {
	if ac.WireFormat != WireFormatPublicMessage {
		return nil, errors.New("mls: content was signed for another wire format")
	}
	if ac.Content.ContentType == ContentTypeApplication {
		return nil, errors.New("mls: application data must be sent as a PrivateMessage")
	}
	pm := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == SenderMember {
		tag, err := p.membershipTag(&ac.Content, &ac.Auth)
		if err != nil {
			return nil, err
		}
		pm.MembershipTag = tag
	}
	return pm, nil
}

// unprotectPublic checks a PublicMessage's group, epoch and membership tag
// and returns its content. The caller verifies the signature with the
// sender's key (verifyContent), which it looks up by sender. See RFC 9420,
// Section 6.2.
func (p *epochProtection) unprotectPublic(pm *PublicMessage) (*AuthenticatedContent, error) {
	if err := p.checkGroupEpoch(pm.Content.GroupID, pm.Content.Epoch); err != nil {
		return nil, err
	}
	if pm.Content.ContentType == ContentTypeApplication {
		return nil, errors.New("mls: application data in a PublicMessage")
	}
	if pm.Content.Sender.Type == SenderMember {
		want, err := p.membershipTag(&pm.Content, &pm.Auth)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(want, pm.MembershipTag) {
			return nil, ErrBadMembershipTag
		}
	}
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}, nil
}

// ratchetFor is the ratchet a content type is encrypted under: application
// data under the application ratchet, proposals and commits under the
// handshake ratchet. See RFC 9420, Section 9.1.
func ratchetFor(ct ContentType) ratchetType {
	if ct == ContentTypeApplication {
		return ratchetApplication
	}
	return ratchetHandshake
}

// privateContentAAD encodes PrivateContentAAD. See RFC 9420, Section 6.3.1.
func privateContentAAD(groupID []byte, epoch uint64, ct ContentType, authenticatedData []byte) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		addOpaque(b, groupID)
		b.AddUint64(epoch)
		b.AddUint8(uint8(ct))
		addOpaque(b, authenticatedData)
	})
}

// senderDataAAD encodes SenderDataAAD. See RFC 9420, Section 6.3.2.
func senderDataAAD(groupID []byte, epoch uint64, ct ContentType) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		addOpaque(b, groupID)
		b.AddUint64(epoch)
		b.AddUint8(uint8(ct))
	})
}

// applyReuseGuard XORs the reuse guard into the first four bytes of a copy of
// the nonce. See RFC 9420, Section 6.3.1.
func applyReuseGuard(nonce []byte, guard [4]byte) []byte {
	out := append([]byte(nil), nonce...)
	for i := range guard {
		out[i] ^= guard[i]
	}
	return out
}

// protectPrivate encrypts signed content from a member as a PrivateMessage,
// padding the plaintext with zeros to a multiple of padBlock bytes (no
// padding when padBlock is 0 or 1). See RFC 9420, Section 6.3.
func (p *epochProtection) protectPrivate(ac *AuthenticatedContent, padBlock int) (*PrivateMessage, error) {
	c := &ac.Content
	if ac.WireFormat != WireFormatPrivateMessage {
		return nil, errors.New("mls: content was signed for another wire format")
	}
	if c.Sender.Type != SenderMember {
		return nil, errors.New("mls: only members send PrivateMessages")
	}
	if err := p.checkGroupEpoch(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	plaintext, err := marshal(func(b *cryptobyte.Builder) {
		c.marshalContent(b)
		ac.Auth.marshal(b, c.ContentType)
	})
	if err != nil {
		return nil, err
	}
	if padBlock > 1 {
		if r := len(plaintext) % padBlock; r != 0 {
			plaintext = append(plaintext, make([]byte, padBlock-r)...)
		}
	}

	rk, err := p.tree.next(c.Sender.Leaf, ratchetFor(c.ContentType))
	if err != nil {
		return nil, err
	}
	var guard [4]byte
	if _, err := rand.Read(guard[:]); err != nil {
		return nil, err
	}
	aad, err := privateContentAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData)
	if err != nil {
		return nil, err
	}
	aead, err := p.suite.newAEAD(rk.key)
	if err != nil {
		return nil, err
	}
	ciphertext := aead.Seal(nil, applyReuseGuard(rk.nonce, guard), plaintext, aad)

	senderData := make([]byte, 0, 12)
	senderData = append(senderData, byte(c.Sender.Leaf>>24), byte(c.Sender.Leaf>>16), byte(c.Sender.Leaf>>8), byte(c.Sender.Leaf))
	senderData = append(senderData, byte(rk.generation>>24), byte(rk.generation>>16), byte(rk.generation>>8), byte(rk.generation))
	senderData = append(senderData, guard[:]...)
	sdKey, sdNonce := senderDataKeyNonce(p.suite, p.senderDataSecret, ciphertext)
	sdAAD, err := senderDataAAD(c.GroupID, c.Epoch, c.ContentType)
	if err != nil {
		return nil, err
	}
	sdAEAD, err := p.suite.newAEAD(sdKey)
	if err != nil {
		return nil, err
	}
	return &PrivateMessage{
		GroupID:             c.GroupID,
		Epoch:               c.Epoch,
		ContentType:         c.ContentType,
		AuthenticatedData:   c.AuthenticatedData,
		EncryptedSenderData: sdAEAD.Seal(nil, sdNonce, senderData, sdAAD),
		Ciphertext:          ciphertext,
	}, nil
}

// unprotectPrivate decrypts a PrivateMessage and returns its content. The
// caller checks that the sender's leaf is not blank and verifies the
// signature with that leaf's key (verifyContent). See RFC 9420, Section 6.3.
func (p *epochProtection) unprotectPrivate(pm *PrivateMessage) (*AuthenticatedContent, error) {
	if err := p.checkGroupEpoch(pm.GroupID, pm.Epoch); err != nil {
		return nil, err
	}
	switch pm.ContentType {
	case ContentTypeApplication, ContentTypeProposal, ContentTypeCommit:
	default:
		return nil, &ParseError{What: "PrivateMessage", Reason: fmt.Sprintf("unknown content type %d", pm.ContentType)}
	}

	sdKey, sdNonce := senderDataKeyNonce(p.suite, p.senderDataSecret, pm.Ciphertext)
	sdAAD, err := senderDataAAD(pm.GroupID, pm.Epoch, pm.ContentType)
	if err != nil {
		return nil, err
	}
	sdAEAD, err := p.suite.newAEAD(sdKey)
	if err != nil {
		return nil, err
	}
	senderData, err := sdAEAD.Open(nil, sdNonce, pm.EncryptedSenderData, sdAAD)
	if err != nil {
		return nil, fmt.Errorf("%w: sender data", ErrDecryption)
	}
	s := cryptobyte.String(senderData)
	var leaf, generation uint32
	var guard [4]byte
	if !s.ReadUint32(&leaf) || !s.ReadUint32(&generation) || !s.CopyBytes(guard[:]) || !s.Empty() {
		return nil, &ParseError{What: "SenderData", Reason: "wrong length"}
	}

	// peek, then consume only once the content authenticates, so that a
	// forged message cannot burn the key of the real one.
	rt := ratchetFor(pm.ContentType)
	rk, err := p.tree.peek(LeafIndex(leaf), rt, generation)
	if err != nil {
		return nil, err
	}
	aad, err := privateContentAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
	if err != nil {
		return nil, err
	}
	aead, err := p.suite.newAEAD(rk.key)
	if err != nil {
		return nil, err
	}
	plaintext, err := aead.Open(nil, applyReuseGuard(rk.nonce, guard), pm.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: content of leaf %d generation %d", ErrDecryption, leaf, generation)
	}
	if err := p.tree.consume(LeafIndex(leaf), rt, generation); err != nil {
		return nil, err
	}

	ac := &AuthenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID:           pm.GroupID,
			Epoch:             pm.Epoch,
			Sender:            Sender{Type: SenderMember, Leaf: LeafIndex(leaf)},
			AuthenticatedData: pm.AuthenticatedData,
			ContentType:       pm.ContentType,
		},
	}
	body := cryptobyte.String(plaintext)
	if !ac.Content.unmarshalContent(&body) || !ac.Auth.unmarshal(&body, pm.ContentType) {
		return nil, &ParseError{What: "PrivateMessageContent", Reason: "truncated or invalid content"}
	}
	for _, c := range body {
		if c != 0 {
			return nil, &ParseError{What: "PrivateMessageContent", Reason: "non-zero padding"}
		}
	}
	return ac, nil
}
