package mls

import (
	"errors"
	"fmt"
)

// This file makes and reads the GroupInfo that a group publishes so that
// non-members can join by external Commit (RFC 9420, Section 12.4.3.2), and
// the GroupInfo of a Welcome.

// newGroupInfo makes the GroupInfo of an epoch, signed by the member at leaf
// signer. gc is the epoch's GroupContext, confirmationTag the epoch's
// confirmation tag; extensions is copied and must not repeat a type. See
// RFC 9420, Section 12.4.3.
func newGroupInfo(cs CipherSuite, gc *GroupContext, extensions Extensions, confirmationTag []byte, signer LeafIndex, key *SignaturePrivateKey) (*GroupInfo, error) {
	if gc.CipherSuite != cs {
		return nil, fmt.Errorf("mls: group context is for suite %v, not %v", gc.CipherSuite, cs)
	}
	if err := extensions.validateUnique(); err != nil {
		return nil, err
	}
	gi := &GroupInfo{
		GroupContext:    *gc,
		Extensions:      append(Extensions{}, extensions...),
		ConfirmationTag: append([]byte(nil), confirmationTag...),
		Signer:          signer,
	}
	if err := gi.sign(cs, key); err != nil {
		return nil, err
	}
	return gi, nil
}

// newExternalGroupInfo is newGroupInfo with an external_pub extension
// holding the epoch's external public key, derived from epoch, added to
// extensions (which must not already have one). To let joiners without the
// tree join, the caller includes a ratchet_tree extension in extensions.
// See RFC 9420, Sections 12.4.3.2 and 8.
func newExternalGroupInfo(cs CipherSuite, gc *GroupContext, epoch *EpochSecrets, extensions Extensions, confirmationTag []byte, signer LeafIndex, key *SignaturePrivateKey) (*GroupInfo, error) {
	if _, ok := extensions.Find(ExtensionExternalPub); ok {
		return nil, errors.New("mls: GroupInfo extensions already have an external_pub")
	}
	pub, err := epoch.ExternalPub()
	if err != nil {
		return nil, err
	}
	data, err := (&ExternalPub{ExternalPub: pub}).Marshal()
	if err != nil {
		return nil, err
	}
	exts := append(append(Extensions{}, extensions...), Extension{Type: ExtensionExternalPub, Data: data})
	return newGroupInfo(cs, gc, exts, confirmationTag, signer, key)
}

// externalJoinInfo is what a joiner takes from a published GroupInfo to
// make an external Commit.
type externalJoinInfo struct {
	GroupInfo *GroupInfo
	// ExternalPub is the public key to run external initialization against
	// (see CipherSuite.externalInit).
	ExternalPub []byte
	// RatchetTree is the group's tree from the ratchet_tree extension, or
	// nil when the GroupInfo has none and the tree must come from
	// elsewhere. It is not validated.
	RatchetTree RatchetTree
}

// readExternalGroupInfo checks a GroupInfo received for an external join:
// suite cs, version mls10, a valid signature under signerKey (the signature
// key of the leaf at gi.Signer, which the caller takes from the tree), and a
// valid external_pub extension; it returns external_pub and the ratchet
// tree if the GroupInfo carries one. Once the tree is known and validated,
// the caller must check that signerKey is indeed the key of leaf gi.Signer.
// See RFC 9420, Section 12.4.3.2.
func readExternalGroupInfo(cs CipherSuite, gi *GroupInfo, signerKey []byte) (*externalJoinInfo, error) {
	if gi.GroupContext.CipherSuite != cs {
		return nil, fmt.Errorf("mls: GroupInfo is for suite %v, not %v", gi.GroupContext.CipherSuite, cs)
	}
	if gi.GroupContext.Version != ProtocolMLS10 {
		return nil, fmt.Errorf("mls: GroupInfo has unsupported version %d", gi.GroupContext.Version)
	}
	if err := gi.verifySignature(cs, signerKey); err != nil {
		return nil, err
	}
	data, ok := gi.Extensions.Find(ExtensionExternalPub)
	if !ok {
		return nil, errors.New("mls: GroupInfo has no external_pub extension; the group does not allow external joins")
	}
	ext, err := UnmarshalExternalPub(data)
	if err != nil {
		return nil, err
	}
	if err := cs.ValidateHPKEPublicKey(ext.ExternalPub); err != nil {
		return nil, fmt.Errorf("mls: GroupInfo external_pub: %w", err)
	}
	tree, err := ratchetTreeExtension(gi)
	if err != nil {
		return nil, err
	}
	return &externalJoinInfo{GroupInfo: gi, ExternalPub: ext.ExternalPub, RatchetTree: tree}, nil
}

// ratchetTreeExtension returns the ratchet_tree extension of a GroupInfo or
// Welcome's GroupInfo, or nil if it has none. See RFC 9420, Section 12.4.3.3.
func ratchetTreeExtension(gi *GroupInfo) (RatchetTree, error) {
	data, ok := gi.Extensions.Find(ExtensionRatchetTree)
	if !ok {
		return nil, nil
	}
	return UnmarshalRatchetTree(data)
}
