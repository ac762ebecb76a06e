package mls

import (
	"crypto/hkdf"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// labelPrefix starts every label of the labeled operations. See RFC 9420,
// Section 5.
const labelPrefix = "MLS 1.0 "

// Extract is the suite's KDF.Extract: HKDF-Extract with salt and ikm.
func (cs CipherSuite) Extract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(newHash(cs.mustParams().kdf), ikm, salt)
	if err != nil {
		panic("mls: HKDF-Extract failed: " + err.Error())
	}
	return prk
}

// Expand is the suite's KDF.Expand.
func (cs CipherSuite) Expand(prk, info []byte, length int) ([]byte, error) {
	out, err := hkdf.Expand(newHash(cs.mustParams().kdf), prk, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("mls: HKDF-Expand: %w", err)
	}
	return out, nil
}

// ExpandWithLabel derives length bytes from secret under the label and
// context. See RFC 9420, Section 5.1.
func (cs CipherSuite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls: ExpandWithLabel length %d out of range", length)
	}
	info, err := marshal(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(length))
		addOpaque(b, []byte(labelPrefix+label))
		addOpaque(b, context)
	})
	if err != nil {
		return nil, err
	}
	return cs.Expand(secret, info, length)
}

// mustExpandWithLabel is ExpandWithLabel for lengths that are the suite's own
// sizes and so cannot fail.
func (cs CipherSuite) mustExpandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	out, err := cs.ExpandWithLabel(secret, label, context, length)
	if err != nil {
		panic(err)
	}
	return out
}

// DeriveSecret is ExpandWithLabel with an empty context and the KDF's output
// size. See RFC 9420, Section 5.1.
func (cs CipherSuite) DeriveSecret(secret []byte, label string) []byte {
	return cs.mustExpandWithLabel(secret, label, nil, cs.SecretSize())
}

// DeriveTreeSecret derives a secret of the secret tree's ratchets for a
// generation. See RFC 9420, Section 9.
func (cs CipherSuite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	return cs.ExpandWithLabel(secret, label, binary.BigEndian.AppendUint32(nil, generation), length)
}

// RefHash hashes value under label, as KeyPackageRef, ProposalRef and
// similar references are made. See RFC 9420, Section 5.2.
func (cs CipherSuite) RefHash(label string, value []byte) ([]byte, error) {
	input, err := marshal(func(b *cryptobyte.Builder) {
		addOpaque(b, []byte(label))
		addOpaque(b, value)
	})
	if err != nil {
		return nil, err
	}
	return cs.hash(input), nil
}

// labeledContent encodes the SignContent and EncryptContext structures,
// which share one shape: the prefixed label and the content, both opaque<V>.
func labeledContent(label string, content []byte) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		addOpaque(b, []byte(labelPrefix+label))
		addOpaque(b, content)
	})
}

// SignWithLabel signs content under label. See RFC 9420, Section 5.1.2.
func (cs CipherSuite) SignWithLabel(k *SignaturePrivateKey, label string, content []byte) ([]byte, error) {
	msg, err := labeledContent(label, content)
	if err != nil {
		return nil, err
	}
	return cs.sign(k, msg)
}

// VerifyWithLabel checks a signature made by SignWithLabel with the public
// key pub. See RFC 9420, Section 5.1.2.
func (cs CipherSuite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	msg, err := labeledContent(label, content)
	if err != nil {
		return err
	}
	return cs.verify(pub, msg, signature)
}

// EncryptWithLabel encrypts plaintext to the public key pub with HPKE in base
// mode, binding label and context. See RFC 9420, Section 5.1.3.
func (cs CipherSuite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (HPKECiphertext, error) {
	info, err := labeledContent(label, context)
	if err != nil {
		return HPKECiphertext{}, err
	}
	return cs.sealBase(pub, info, nil, plaintext)
}

// DecryptWithLabel reverses EncryptWithLabel. See RFC 9420, Section 5.1.3.
func (cs CipherSuite) DecryptWithLabel(priv *HPKEPrivateKey, label string, context []byte, ct HPKECiphertext) ([]byte, error) {
	info, err := labeledContent(label, context)
	if err != nil {
		return nil, err
	}
	return cs.openBase(priv, info, nil, ct)
}
