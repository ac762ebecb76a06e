package client

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tainik/tainik/relay"
)

// InvitePrefix starts every invitation link.
const InvitePrefix = "tainik:invite/"

const inviteLabel = "tainik invitation v1\x00"

// Invitation is a one-time invitation: where to send a contact request,
// the key to encrypt it to, and who is inviting. The inviter's identity
// key signs it.
type Invitation struct {
	Relay    string
	SenderID relay.ID
	// RequestKey is the X25519 public key that contact requests are
	// sealed to with HPKE.
	RequestKey []byte
	Identity   ed25519.PublicKey
	Expires    time.Time
	Signature  []byte
}

func (inv *Invitation) signed() []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte(inviteLabel))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(inv.Relay)) })
	b.AddBytes(inv.SenderID[:])
	b.AddBytes(inv.RequestKey)
	b.AddBytes(inv.Identity)
	b.AddUint64(uint64(inv.Expires.Unix()))
	return b.BytesOrPanic()
}

// Link encodes the invitation as a tainik:invite/ link.
func (inv *Invitation) Link() string {
	raw := append(inv.signed()[len(inviteLabel):], inv.Signature...)
	return InvitePrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// ErrInvalidInvite is wrapped by ParseInvitation for a link that is
// malformed or tampered with.
var ErrInvalidInvite = errors.New("client: invalid invitation link")

// ErrExpiredInvite is returned by ParseInvitation for an expired link.
var ErrExpiredInvite = errors.New("client: the invitation link has expired: ask your contact for a new one")

// ParseInvitation decodes a link and checks its signature and expiry.
func ParseInvitation(link string, now time.Time) (*Invitation, error) {
	link = strings.TrimSpace(link)
	if !strings.HasPrefix(link, InvitePrefix) {
		return nil, fmt.Errorf("%w: it does not start with %q; copy the whole link", ErrInvalidInvite, InvitePrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(link[len(InvitePrefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: it is damaged (bad encoding); copy the whole link again", ErrInvalidInvite)
	}
	s := cryptobyte.String(raw)
	inv := &Invitation{RequestKey: make([]byte, 32), Identity: make([]byte, 32), Signature: make([]byte, 64)}
	var addr cryptobyte.String
	var exp uint64
	if !s.ReadUint16LengthPrefixed(&addr) || !s.CopyBytes(inv.SenderID[:]) || !s.CopyBytes(inv.RequestKey) ||
		!s.CopyBytes(inv.Identity) || !s.ReadUint64(&exp) || !s.CopyBytes(inv.Signature) || !s.Empty() {
		return nil, fmt.Errorf("%w: it is damaged (wrong length); copy the whole link again", ErrInvalidInvite)
	}
	inv.Relay = string(addr)
	inv.Expires = time.Unix(int64(exp), 0)
	if !ed25519.Verify(inv.Identity, inv.signed(), inv.Signature) {
		return nil, fmt.Errorf("%w: its signature does not verify, so it was altered; ask your contact for the link again", ErrInvalidInvite)
	}
	if now.After(inv.Expires) {
		return nil, ErrExpiredInvite
	}
	return inv, nil
}

var (
	hpkeKEM  = hpke.DHKEM(ecdh.X25519())
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.ChaCha20Poly1305()
)

func sealTo(pub []byte, info string, plaintext []byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("client: bad public key: %w", err)
	}
	hpk, err := hpke.NewDHKEMPublicKey(pk)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(hpk, hpkeKDF, hpkeAEAD, []byte(info), plaintext)
}

func openWith(priv []byte, info string, ciphertext []byte) ([]byte, error) {
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	hsk, err := hpke.NewDHKEMPrivateKey(sk)
	if err != nil {
		return nil, err
	}
	return hpke.Open(hsk, hpkeKDF, hpkeAEAD, []byte(info), ciphertext)
}

// contactRequest is what a newcomer seals to an invitation's RequestKey.
type contactRequest struct {
	Identity   []byte // ed25519 identity public key
	KeyPackage []byte
	ReplyRelay string
	ReplyID    relay.ID
	ReplyKey   []byte // X25519 public key the answer is sealed to
}

// contactAccept is what the inviter seals to contactRequest.ReplyKey.
type contactAccept struct {
	Identity []byte
	Welcome  []byte
	Relay    string
	LogID    relay.ID
	LogToken relay.ID
	From     uint64
	Name     string // conversation name, empty for 1:1
}
