package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// protectionPair is a sender's and a receiver's view of one epoch, with the
// same secrets and separate secret trees, as two members would hold them.
type protectionPair struct {
	cs               CipherSuite
	sender, receiver *epochProtection
	key              *SignaturePrivateKey
}

func newProtectionPair(t testing.TB, cs CipherSuite, leaves uint32) *protectionPair {
	t.Helper()
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: []byte("group"), Epoch: 7,
		TreeHash: bytes.Repeat([]byte{1}, cs.HashSize()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, cs.HashSize())}
	gcBytes, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	secret := func(b byte) []byte { return bytes.Repeat([]byte{b}, cs.SecretSize()) }
	mk := func() *epochProtection {
		return &epochProtection{suite: cs, groupID: gc.GroupID, epoch: gc.Epoch, groupContext: gcBytes,
			senderDataSecret: secret(3), membershipKey: secret(4), tree: newSecretTree(cs, secret(5), leaves)}
	}
	key, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return &protectionPair{cs: cs, sender: mk(), receiver: mk(), key: key}
}

// sealApplication signs and encrypts application data from leaf.
func (pp *protectionPair) sealApplication(t testing.TB, leaf LeafIndex, data []byte) *PrivateMessage {
	t.Helper()
	content := FramedContent{GroupID: pp.sender.groupID, Epoch: pp.sender.epoch, Sender: Sender{Type: SenderMember, Leaf: leaf},
		AuthenticatedData: []byte("aad"), ContentType: ContentTypeApplication, ApplicationData: data}
	sig, err := pp.cs.signContent(pp.key, WireFormatPrivateMessage, &content, pp.sender.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := pp.sender.protectPrivate(&AuthenticatedContent{WireFormat: WireFormatPrivateMessage, Content: content,
		Auth: FramedContentAuthData{Signature: sig}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func (pp *protectionPair) open(pm *PrivateMessage) ([]byte, error) {
	ac, err := pp.receiver.unprotectPrivate(pm)
	if err != nil {
		return nil, err
	}
	if err := pp.cs.verifyContent(pp.key.PublicKey(), ac, pp.receiver.groupContext); err != nil {
		return nil, err
	}
	return ac.Content.ApplicationData, nil
}

func TestPrivateMessageRoundTrip(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			pp := newProtectionPair(t, cs, 3)
			for i := range 3 {
				msg := []byte(fmt.Sprintf("message %d", i))
				pm := pp.sealApplication(t, 2, msg)
				const tagSize = 16 // every suite's AEAD
				if (len(pm.Ciphertext)-tagSize)%64 != 0 {
					t.Errorf("ciphertext of %d bytes is not padded to 64-byte blocks", len(pm.Ciphertext))
				}
				got, err := pp.open(pm)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("got %q, want %q", got, msg)
				}
			}
		})
	}
}

func TestPrivateMessageErrors(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	pp := newProtectionPair(t, cs, 2)

	// Out of order within the window decrypts; a replay is refused.
	first := pp.sealApplication(t, 1, []byte("first"))
	second := pp.sealApplication(t, 1, []byte("second"))
	if got, err := pp.open(second); err != nil || string(got) != "second" {
		t.Fatalf("second before first: %q, %v", got, err)
	}
	if got, err := pp.open(first); err != nil || string(got) != "first" {
		t.Fatalf("first after second: %q, %v", got, err)
	}
	if _, err := pp.open(first); !errors.Is(err, ErrGenerationUsed) {
		t.Errorf("replay: got %v, want ErrGenerationUsed", err)
	}

	// A forged ciphertext fails and does not burn the real message's key.
	real := pp.sealApplication(t, 1, []byte("real"))
	forged := *real
	forged.Ciphertext = append([]byte(nil), real.Ciphertext...)
	forged.Ciphertext[len(forged.Ciphertext)-1] ^= 1
	if _, err := pp.open(&forged); !errors.Is(err, ErrDecryption) {
		t.Errorf("tampered ciphertext: got %v, want ErrDecryption", err)
	}
	if got, err := pp.open(real); err != nil || string(got) != "real" {
		t.Errorf("real message after a forgery: %q, %v", got, err)
	}

	// Altered authenticated data breaks the content AEAD.
	m := pp.sealApplication(t, 1, []byte("x"))
	m.AuthenticatedData = []byte("other")
	if _, err := pp.open(m); !errors.Is(err, ErrDecryption) {
		t.Errorf("altered authenticated data: got %v, want ErrDecryption", err)
	}

	// Wrong epoch and wrong group are named as such.
	m = pp.sealApplication(t, 1, []byte("x"))
	m.Epoch++
	var ee *EpochError
	if _, err := pp.open(m); !errors.As(err, &ee) || !errors.Is(err, ErrWrongEpoch) || ee.Got != 8 || ee.Want != 7 {
		t.Errorf("wrong epoch: got %v", err)
	}
	m.Epoch--
	m.GroupID = []byte("other group")
	if _, err := pp.open(m); !errors.Is(err, ErrWrongGroup) {
		t.Errorf("wrong group: got %v, want ErrWrongGroup", err)
	}

	// A sender outside the tree is unknown.
	big := newProtectionPair(t, cs, 4)
	big.receiver = pp.receiver
	big.sender.senderDataSecret = pp.receiver.senderDataSecret
	if _, err := big.open(big.sealApplication(t, 3, []byte("x"))); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("sender outside the tree: got %v, want ErrUnknownSender", err)
	}

	// A signature by another key is refused.
	other := newProtectionPair(t, cs, 2)
	other.receiver, other.sender = pp.receiver, pp.sender
	if _, err := pp.open(other.sealApplication(t, 1, []byte("x"))); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature by another key: got %v, want ErrBadSignature", err)
	}
}

func TestPublicMessageErrors(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	pp := newProtectionPair(t, cs, 2)
	content := FramedContent{GroupID: pp.sender.groupID, Epoch: pp.sender.epoch, Sender: Sender{Type: SenderMember, Leaf: 1},
		ContentType: ContentTypeProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: 0}}}
	sig, err := cs.signContent(pp.key, WireFormatPublicMessage, &content, pp.sender.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: content, Auth: FramedContentAuthData{Signature: sig}}
	pm, err := pp.sender.protectPublic(ac)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pp.receiver.unprotectPublic(pm)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.verifyContent(pp.key.PublicKey(), got, pp.receiver.groupContext); err != nil {
		t.Fatal(err)
	}

	// Changing the content breaks the membership tag.
	tampered := *pm
	tampered.Content.Proposal = &Proposal{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: 1}}
	if _, err := pp.receiver.unprotectPublic(&tampered); !errors.Is(err, ErrBadMembershipTag) {
		t.Errorf("tampered content: got %v, want ErrBadMembershipTag", err)
	}
	// A content signed for a PrivateMessage is not accepted as a PublicMessage.
	ac.WireFormat = WireFormatPrivateMessage
	if _, err := pp.sender.protectPublic(ac); err == nil {
		t.Error("protectPublic accepted content signed for another wire format")
	}
	// Content moved to another wire format does not verify.
	moved := *got
	moved.WireFormat = WireFormatPrivateMessage
	if err := cs.verifyContent(pp.key.PublicKey(), &moved, pp.receiver.groupContext); !errors.Is(err, ErrBadSignature) {
		t.Errorf("content moved to another wire format: got %v, want ErrBadSignature", err)
	}
}
