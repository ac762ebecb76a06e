package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// KeyPackage is a pre-published, signed offer to join groups. See RFC 9420,
// Section 10.
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  Extensions
	// Signature is SignWithLabel(., "KeyPackageTBS", KeyPackageTBS); see
	// TBS.
	Signature []byte
}

// marshalTBS writes KeyPackageTBS: every field but the signature.
func (kp *KeyPackage) marshalTBS(b *cryptobyte.Builder) {
	b.AddUint16(uint16(kp.Version))
	b.AddUint16(uint16(kp.CipherSuite))
	addOpaque(b, kp.InitKey)
	kp.LeafNode.marshal(b)
	kp.Extensions.marshal(b)
}

func (kp *KeyPackage) marshal(b *cryptobyte.Builder) {
	kp.marshalTBS(b)
	addOpaque(b, kp.Signature)
}

func (kp *KeyPackage) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint16((*uint16)(&kp.Version)) &&
		s.ReadUint16((*uint16)(&kp.CipherSuite)) &&
		readOpaqueCopy(s, &kp.InitKey) &&
		kp.LeafNode.unmarshal(s) &&
		kp.Extensions.unmarshal(s) &&
		readOpaqueCopy(s, &kp.Signature)
}

// TBS returns the encoded KeyPackageTBS, the content that Signature covers.
// See RFC 9420, Section 10.
func (kp *KeyPackage) TBS() ([]byte, error) { return marshal(kp.marshalTBS) }

// Ref returns the KeyPackageRef that names this KeyPackage in a Welcome:
// RefHash("MLS 1.0 KeyPackage Reference", KeyPackage). See RFC 9420,
// Section 5.2.
func (kp *KeyPackage) Ref(cs CipherSuite) ([]byte, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	data, err := kp.Marshal()
	if err != nil {
		return nil, err
	}
	return cs.RefHash("MLS 1.0 KeyPackage Reference", data)
}

// Marshal returns the TLS encoding of the KeyPackage.
func (kp *KeyPackage) Marshal() ([]byte, error) { return marshal(kp.marshal) }

// UnmarshalKeyPackage decodes a KeyPackage, rejecting trailing bytes.
func UnmarshalKeyPackage(data []byte) (*KeyPackage, error) {
	kp := new(KeyPackage)
	if err := unmarshal(data, "KeyPackage", kp.unmarshal); err != nil {
		return nil, err
	}
	return kp, nil
}

// sign sets the KeyPackage's signature over its KeyPackageTBS.
// See RFC 9420, Section 10.
func (kp *KeyPackage) sign(cs CipherSuite, key *SignaturePrivateKey) error {
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(key, "KeyPackageTBS", tbs)
	if err != nil {
		return err
	}
	kp.Signature = sig
	return nil
}

// verifySignature checks the KeyPackage's signature with the signature key
// of its leaf node. See RFC 9420, Section 10.1.
func (kp *KeyPackage) verifySignature(cs CipherSuite) error {
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(kp.LeafNode.SignatureKey, "KeyPackageTBS", tbs, kp.Signature); err != nil {
		return fmt.Errorf("mls: KeyPackage: %w", err)
	}
	return nil
}
