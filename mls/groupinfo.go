package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// GroupInfo describes a group to a joiner, signed by the member at leaf
// Signer. See RFC 9420, Section 12.4.3.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          LeafIndex
	// Signature is SignWithLabel(., "GroupInfoTBS", GroupInfoTBS); see TBS.
	Signature []byte
}

// marshalTBS writes GroupInfoTBS: every field but the signature.
func (g *GroupInfo) marshalTBS(b *cryptobyte.Builder) {
	g.GroupContext.marshal(b)
	g.Extensions.marshal(b)
	addOpaque(b, g.ConfirmationTag)
	b.AddUint32(uint32(g.Signer))
}

func (g *GroupInfo) marshal(b *cryptobyte.Builder) {
	g.marshalTBS(b)
	addOpaque(b, g.Signature)
}

func (g *GroupInfo) unmarshal(s *cryptobyte.String) bool {
	return g.GroupContext.unmarshal(s) &&
		g.Extensions.unmarshal(s) &&
		readOpaqueCopy(s, &g.ConfirmationTag) &&
		s.ReadUint32((*uint32)(&g.Signer)) &&
		readOpaqueCopy(s, &g.Signature)
}

// TBS returns the encoded GroupInfoTBS, the content that Signature covers.
// See RFC 9420, Section 12.4.3.
func (g *GroupInfo) TBS() ([]byte, error) { return marshal(g.marshalTBS) }

// Marshal returns the TLS encoding of the GroupInfo.
func (g *GroupInfo) Marshal() ([]byte, error) { return marshal(g.marshal) }

// UnmarshalGroupInfo decodes a GroupInfo, rejecting trailing bytes.
func UnmarshalGroupInfo(data []byte) (*GroupInfo, error) {
	g := new(GroupInfo)
	if err := unmarshal(data, "GroupInfo", g.unmarshal); err != nil {
		return nil, err
	}
	return g, nil
}

// sign sets the GroupInfo's signature over its GroupInfoTBS.
// See RFC 9420, Section 12.4.3.
func (g *GroupInfo) sign(cs CipherSuite, key *SignaturePrivateKey) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(key, "GroupInfoTBS", tbs)
	if err != nil {
		return err
	}
	g.Signature = sig
	return nil
}

// verifySignature checks the GroupInfo's signature with the signer's
// signature public key. See RFC 9420, Section 12.4.3.1.
func (g *GroupInfo) verifySignature(cs CipherSuite, signerKey []byte) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(signerKey, "GroupInfoTBS", tbs, g.Signature); err != nil {
		return fmt.Errorf("mls: GroupInfo: %w", err)
	}
	return nil
}
