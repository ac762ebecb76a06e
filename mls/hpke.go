package mls

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha3"
	"crypto/sha512"
	"errors"
	"fmt"

	circlkem "github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/cryptobyte"
)

// HPKEPrivateKey is a KEM decapsulation key of one cipher suite: a leaf's
// init or encryption key, or a parent node's key derived from a path secret.
// It is kept parsed, so that decryption does not recompute the public key.
type HPKEPrivateKey struct {
	suite CipherSuite
	std   hpke.PrivateKey     // every suite but X448
	circl circlkem.PrivateKey // X448
	pub   []byte
}

// PublicKey returns the serialized public key (SerializePublicKey of RFC 9180).
func (k *HPKEPrivateKey) PublicKey() []byte { return append([]byte(nil), k.pub...) }

// Bytes returns the serialized private key (SerializePrivateKey of RFC 9180),
// for storing the key in the client's encrypted store.
func (k *HPKEPrivateKey) Bytes() ([]byte, error) {
	if k.std != nil {
		return k.std.Bytes()
	}
	return k.circl.MarshalBinary()
}

func (cs CipherSuite) wrapKey(std hpke.PrivateKey, ck circlkem.PrivateKey) (*HPKEPrivateKey, error) {
	k := &HPKEPrivateKey{suite: cs, std: std, circl: ck}
	if std != nil {
		k.pub = std.PublicKey().Bytes()
		return k, nil
	}
	pub, err := ck.Public().MarshalBinary()
	if err != nil {
		return nil, err
	}
	k.pub = pub
	return k, nil
}

// GenerateHPKEKey returns a fresh KEM key pair of the suite.
func (cs CipherSuite) GenerateHPKEKey() (*HPKEPrivateKey, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if k := p.stdKEM(); k != nil {
		priv, err := k.GenerateKey()
		if err != nil {
			return nil, err
		}
		return cs.wrapKey(priv, nil)
	}
	_, priv, err := circlX448().GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	return cs.wrapKey(nil, priv)
}

// DeriveHPKEKey derives a KEM key pair from ikm with the KEM's DeriveKeyPair,
// as TreeKEM does from a node secret. See RFC 9420, Section 4 and RFC 9180,
// Section 7.1.3.
func (cs CipherSuite) DeriveHPKEKey(ikm []byte) (*HPKEPrivateKey, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if p.kem == kemXWing {
		// X-Wing's DeriveKeyPair as draft-connolly-cfrg-xwing-kem defines
		// it for HPKE, and as ts-mls, whose numbering of the X-Wing suites
		// this package uses, computes it: the private key (a seed) is
		// SHAKE256(ikm, 32). The standard library's MLKEM768X25519 follows
		// draft-ietf-hpke-pq instead, with SHAKE256.LabeledDerive, and so
		// derives other TreeKEM node keys.
		priv, err := p.stdKEM().NewPrivateKey(sha3.SumSHAKE256(ikm, 32))
		if err != nil {
			return nil, fmt.Errorf("mls: deriving key pair: %w", err)
		}
		return cs.wrapKey(priv, nil)
	}
	if k := p.stdKEM(); k != nil {
		priv, err := k.DeriveKeyPair(ikm)
		if err != nil {
			return nil, fmt.Errorf("mls: deriving key pair: %w", err)
		}
		return cs.wrapKey(priv, nil)
	}
	// circl's DeriveKeyPair panics unless ikm is exactly 56 bytes, which
	// RFC 9180 does not require and MLS secrets (64 bytes) are not.
	sk, err := deriveX448PrivateKey(ikm)
	if err != nil {
		return nil, err
	}
	priv, err := circlX448().UnmarshalBinaryPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("mls: deriving key pair: %w", err)
	}
	return cs.wrapKey(nil, priv)
}

// deriveX448PrivateKey is DeriveKeyPair of DHKEM(X448, HKDF-SHA512) for any
// length of ikm, returning the serialized private key. See RFC 9180,
// Sections 4 and 7.1.3.
func deriveX448PrivateKey(ikm []byte) ([]byte, error) {
	const nsk = 56
	// "HPKE-v1" || suite_id, where suite_id = "KEM" || I2OSP(0x0021, 2)
	prefix := "HPKE-v1KEM\x00\x21"
	prk, err := hkdf.Extract(sha512.New, append([]byte(prefix+"dkp_prk"), ikm...), nil)
	if err != nil {
		return nil, err
	}
	info := "\x00\x38" + prefix + "sk" // I2OSP(Nsk, 2) || "HPKE-v1" || suite_id || "sk" || ""
	return hkdf.Expand(sha512.New, prk, info, nsk)
}

// NewHPKEPrivateKey parses a serialized private key of the suite.
func (cs CipherSuite) NewHPKEPrivateKey(data []byte) (*HPKEPrivateKey, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if k := p.stdKEM(); k != nil {
		priv, err := k.NewPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("mls: invalid %v private key: %w", cs, err)
		}
		return cs.wrapKey(priv, nil)
	}
	priv, err := circlX448().UnmarshalBinaryPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("mls: invalid %v private key: %w", cs, err)
	}
	return cs.wrapKey(nil, priv)
}

// ValidateHPKEPublicKey reports whether data is a valid public key of the
// suite's KEM.
func (cs CipherSuite) ValidateHPKEPublicKey(data []byte) error {
	p, err := cs.params()
	if err != nil {
		return err
	}
	if k := p.stdKEM(); k != nil {
		_, err = k.NewPublicKey(data)
	} else {
		_, err = circlX448().UnmarshalBinaryPublicKey(data)
	}
	if err != nil {
		return fmt.Errorf("mls: invalid %v public key: %w", cs, err)
	}
	return nil
}

// HPKECiphertext is the output of EncryptWithLabel. See RFC 9420,
// Section 5.1.3.
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) marshal(b *cryptobyte.Builder) {
	addOpaque(b, c.KEMOutput)
	addOpaque(b, c.Ciphertext)
}

func (c *HPKECiphertext) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &c.KEMOutput) && readOpaqueCopy(s, &c.Ciphertext)
}

// sealBase is HPKE SealBase (RFC 9180, Section 6.1) to the serialized public
// key pub.
func (cs CipherSuite) sealBase(pub, info, aad, plaintext []byte) (HPKECiphertext, error) {
	p, err := cs.params()
	if err != nil {
		return HPKECiphertext{}, err
	}
	if k := p.stdKEM(); k != nil {
		pk, err := k.NewPublicKey(pub)
		if err != nil {
			return HPKECiphertext{}, fmt.Errorf("mls: invalid %v public key: %w", cs, err)
		}
		enc, sender, err := hpke.NewSender(pk, p.hpkeKDF(), p.hpkeAEAD(), info)
		if err != nil {
			return HPKECiphertext{}, err
		}
		ct, err := sender.Seal(aad, plaintext)
		if err != nil {
			return HPKECiphertext{}, err
		}
		return HPKECiphertext{KEMOutput: enc, Ciphertext: ct}, nil
	}
	suite := p.circlSuite()
	pk, err := circlX448().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return HPKECiphertext{}, fmt.Errorf("mls: invalid %v public key: %w", cs, err)
	}
	sender, err := suite.NewSender(pk, info)
	if err != nil {
		return HPKECiphertext{}, err
	}
	enc, sealer, err := sender.Setup(rand.Reader)
	if err != nil {
		return HPKECiphertext{}, err
	}
	ct, err := sealer.Seal(plaintext, aad)
	if err != nil {
		return HPKECiphertext{}, err
	}
	return HPKECiphertext{KEMOutput: enc, Ciphertext: ct}, nil
}

// errHPKEOpen is returned for every HPKE decryption failure, so that the
// reason (bad encapsulation or bad tag) does not leak.
var errHPKEOpen = errors.New("mls: HPKE decryption failed")

// openBase is HPKE OpenBase (RFC 9180, Section 6.1).
func (cs CipherSuite) openBase(priv *HPKEPrivateKey, info, aad []byte, ct HPKECiphertext) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if priv == nil || priv.suite != cs {
		return nil, errors.New("mls: HPKE private key of another cipher suite")
	}
	if priv.std != nil {
		r, err := hpke.NewRecipient(ct.KEMOutput, priv.std, p.hpkeKDF(), p.hpkeAEAD(), info)
		if err != nil {
			return nil, errHPKEOpen
		}
		pt, err := r.Open(aad, ct.Ciphertext)
		if err != nil {
			return nil, errHPKEOpen
		}
		return pt, nil
	}
	r, err := p.circlSuite().NewReceiver(priv.circl, info)
	if err != nil {
		return nil, err
	}
	opener, err := r.Setup(ct.KEMOutput)
	if err != nil {
		return nil, errHPKEOpen
	}
	pt, err := opener.Open(ct.Ciphertext, aad)
	if err != nil {
		return nil, errHPKEOpen
	}
	return pt, nil
}
