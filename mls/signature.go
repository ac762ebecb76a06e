package mls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/ed448"
)

// SignaturePrivateKey is a member's signing key for one cipher suite's
// signature scheme. See RFC 9420, Section 5.1.2.
type SignaturePrivateKey struct {
	scheme  SignatureScheme
	ed25519 ed25519.PrivateKey
	ecdsa   *ecdsa.PrivateKey
	ed448   ed448.PrivateKey
	pub     []byte
}

// PublicKey returns the encoded public key as MLS carries it in
// signature_key: the raw key for EdDSA, the uncompressed point for ECDSA.
func (k *SignaturePrivateKey) PublicKey() []byte { return append([]byte(nil), k.pub...) }

// Bytes returns the private key encoding NewSignaturePrivateKey accepts: the
// seed for EdDSA and the big-endian scalar for ECDSA.
func (k *SignaturePrivateKey) Bytes() []byte {
	switch {
	case k.ed25519 != nil:
		return append([]byte(nil), k.ed25519.Seed()...)
	case k.ecdsa != nil:
		b, err := k.ecdsa.Bytes()
		if err != nil {
			panic("mls: ECDSA key without encoding: " + err.Error())
		}
		return b
	}
	return append([]byte(nil), k.ed448.Seed()...)
}

// Scheme returns the key's signature scheme.
func (k *SignaturePrivateKey) Scheme() SignatureScheme { return k.scheme }

func ecdsaCurve(s SignatureScheme) (elliptic.Curve, crypto.Hash) {
	switch s {
	case ECDSA_SECP256R1_SHA256:
		return elliptic.P256(), crypto.SHA256
	case ECDSA_SECP384R1_SHA384:
		return elliptic.P384(), crypto.SHA384
	case ECDSA_SECP521R1_SHA512:
		return elliptic.P521(), crypto.SHA512
	}
	return nil, 0
}

// GenerateSignatureKey returns a fresh signing key for the suite's scheme.
func (cs CipherSuite) GenerateSignatureKey() (*SignaturePrivateKey, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	switch p.sig {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return &SignaturePrivateKey{scheme: Ed25519, ed25519: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
	case Ed448:
		pub, priv, err := ed448.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return &SignaturePrivateKey{scheme: Ed448, ed448: priv, pub: pub}, nil
	}
	curve, _ := ecdsaCurve(p.sig)
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, err
	}
	return newECDSAKey(p.sig, priv)
}

func newECDSAKey(s SignatureScheme, priv *ecdsa.PrivateKey) (*SignaturePrivateKey, error) {
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	return &SignaturePrivateKey{scheme: s, ecdsa: priv, pub: pub}, nil
}

// NewSignaturePrivateKey parses a private key in the encoding of Bytes.
func (cs CipherSuite) NewSignaturePrivateKey(data []byte) (*SignaturePrivateKey, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	switch p.sig {
	case Ed25519:
		if len(data) != ed25519.SeedSize {
			return nil, fmt.Errorf("mls: Ed25519 private key is %d bytes, want %d", len(data), ed25519.SeedSize)
		}
		priv := ed25519.NewKeyFromSeed(data)
		return &SignaturePrivateKey{scheme: Ed25519, ed25519: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
	case Ed448:
		if len(data) != ed448.SeedSize {
			return nil, fmt.Errorf("mls: Ed448 private key is %d bytes, want %d", len(data), ed448.SeedSize)
		}
		priv := ed448.NewKeyFromSeed(data)
		return &SignaturePrivateKey{scheme: Ed448, ed448: priv, pub: priv.Public().(ed448.PublicKey)}, nil
	}
	curve, _ := ecdsaCurve(p.sig)
	priv, err := ecdsa.ParseRawPrivateKey(curve, data)
	if err != nil {
		return nil, fmt.Errorf("mls: invalid %v private key: %w", cs, err)
	}
	return newECDSAKey(p.sig, priv)
}

// errBadSignature is returned by verify for every signature that does not
// verify, whatever the reason.
var errBadSignature = errors.New("mls: invalid signature")

func (cs CipherSuite) sign(k *SignaturePrivateKey, msg []byte) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if k == nil || k.scheme != p.sig {
		return nil, fmt.Errorf("mls: signing key does not match suite %v", cs)
	}
	switch {
	case k.ed25519 != nil:
		return ed25519.Sign(k.ed25519, msg), nil
	case k.ed448 != nil:
		return ed448.Sign(k.ed448, msg, ""), nil
	}
	_, h := ecdsaCurve(k.scheme)
	d := h.New()
	d.Write(msg)
	return ecdsa.SignASN1(rand.Reader, k.ecdsa, d.Sum(nil))
}

func (cs CipherSuite) verify(pub, msg, sig []byte) error {
	p, err := cs.params()
	if err != nil {
		return err
	}
	switch p.sig {
	case Ed25519:
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
			return errBadSignature
		}
		return nil
	case Ed448:
		if len(pub) != ed448.PublicKeySize || !ed448.Verify(pub, msg, sig, "") {
			return errBadSignature
		}
		return nil
	}
	curve, h := ecdsaCurve(p.sig)
	pk, err := ecdsa.ParseUncompressedPublicKey(curve, pub)
	if err != nil {
		return errBadSignature
	}
	d := h.New()
	d.Write(msg)
	if !ecdsa.VerifyASN1(pk, d.Sum(nil), sig) {
		return errBadSignature
	}
	return nil
}

// ValidateSignaturePublicKey reports whether data is a valid public key of
// the suite's signature scheme.
func (cs CipherSuite) ValidateSignaturePublicKey(data []byte) error {
	p, err := cs.params()
	if err != nil {
		return err
	}
	ok := true
	switch p.sig {
	case Ed25519:
		ok = len(data) == ed25519.PublicKeySize
	case Ed448:
		ok = len(data) == ed448.PublicKeySize
	default:
		curve, _ := ecdsaCurve(p.sig)
		_, err := ecdsa.ParseUncompressedPublicKey(curve, data)
		ok = err == nil
	}
	if !ok {
		return fmt.Errorf("mls: invalid %v signature public key", cs)
	}
	return nil
}
