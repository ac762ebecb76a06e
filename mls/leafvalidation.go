package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file is the validation of leaf nodes (RFC 9420, Section 7.3) and
// KeyPackages (Section 10.1) that needs nothing but the node itself and the
// group's extensions. Uniqueness of keys across the tree and the credential
// types in use by other members are the ratchet tree's to check.

// validateLeafNode checks leaf as it appears with the given source: a
// KeyPackage's leaf (groupID and index ignored), an Update proposal's or an
// UpdatePath's (signed for groupID at leaf index). It checks the source, the
// signature, the credential with validate, that the keys parse, that the
// capabilities list mls10, cs and the credential type, that every non-default
// extension of the leaf is listed in its capabilities, that the leaf
// supports the required_capabilities and every non-default extension of
// groupExtensions (the GroupContext's extensions; nil before the leaf is
// matched to a group), and, for a key_package leaf, that its lifetime
// contains now. A zero now skips the lifetime check, which Section 7.3 only
// recommends for leaves received in a ratchet tree.
//
// For an Update, the caller must also check that the encryption key differs
// from the replaced leaf's. See RFC 9420, Section 7.3.
func validateLeafNode(cs CipherSuite, leaf *LeafNode, source LeafNodeSource, groupID []byte, index LeafIndex, groupExtensions Extensions, validate CredentialValidator, now time.Time) error {
	if validate == nil {
		return errors.New("mls: no credential validator configured")
	}
	if leaf.Source != source {
		return fmt.Errorf("mls: leaf node has source %d where %d is required", leaf.Source, source)
	}
	if err := cs.ValidateSignaturePublicKey(leaf.SignatureKey); err != nil {
		return fmt.Errorf("mls: leaf node signature_key: %w", err)
	}
	if err := cs.ValidateHPKEPublicKey(leaf.EncryptionKey); err != nil {
		return fmt.Errorf("mls: leaf node encryption_key: %w", err)
	}
	if err := leaf.verifySignature(cs, groupID, index); err != nil {
		return err
	}
	if err := validate(cs, &leaf.Credential, leaf.SignatureKey); err != nil {
		return fmt.Errorf("mls: credential rejected: %w", err)
	}
	caps := &leaf.Capabilities
	if !slices.Contains(caps.Versions, ProtocolMLS10) {
		return errors.New("mls: leaf node capabilities do not list version mls10")
	}
	if !slices.Contains(caps.CipherSuites, cs) {
		return fmt.Errorf("mls: leaf node capabilities do not list cipher suite %v", cs)
	}
	if !slices.Contains(caps.Credentials, leaf.Credential.Type) {
		return fmt.Errorf("mls: leaf node capabilities do not list its own credential type 0x%04x", uint16(leaf.Credential.Type))
	}
	if err := checkExtensionsListed("leaf node", leaf.Extensions, caps); err != nil {
		return err
	}
	if err := checkSupportsGroup(caps, groupExtensions); err != nil {
		return err
	}
	if source == LeafNodeSourceKeyPackage && !now.IsZero() {
		if err := checkLifetime(leaf.Lifetime, now); err != nil {
			return err
		}
	}
	return nil
}

// checkExtensionsListed reports an error if a non-default extension type of
// exts is missing from caps.Extensions. See RFC 9420, Sections 7.2 and 10.
func checkExtensionsListed(where string, exts Extensions, caps *Capabilities) error {
	for _, e := range exts {
		if !isDefaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			return fmt.Errorf("mls: %s extension 0x%04x is not listed in its capabilities", where, uint16(e.Type))
		}
	}
	return nil
}

// checkSupportsGroup reports an error if caps lacks a capability that the
// group's required_capabilities extension demands, or a non-default
// extension type that the group context uses. See RFC 9420, Sections 7.3
// and 11.1.
func checkSupportsGroup(caps *Capabilities, groupExtensions Extensions) error {
	for _, e := range groupExtensions {
		if !isDefaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			return fmt.Errorf("mls: leaf node does not support group context extension 0x%04x", uint16(e.Type))
		}
	}
	data, ok := groupExtensions.Find(ExtensionRequiredCapabilities)
	if !ok {
		return nil
	}
	req, err := UnmarshalRequiredCapabilities(data)
	if err != nil {
		return err
	}
	for _, t := range req.ExtensionTypes {
		if !isDefaultExtension(t) && !slices.Contains(caps.Extensions, t) {
			return fmt.Errorf("mls: leaf node does not support required extension 0x%04x", uint16(t))
		}
	}
	for _, t := range req.ProposalTypes {
		if !isDefaultProposal(t) && !slices.Contains(caps.Proposals, t) {
			return fmt.Errorf("mls: leaf node does not support required proposal 0x%04x", uint16(t))
		}
	}
	for _, t := range req.CredentialTypes {
		if !slices.Contains(caps.Credentials, t) {
			return fmt.Errorf("mls: leaf node does not support required credential type 0x%04x", uint16(t))
		}
	}
	return nil
}

// checkLifetime reports an error unless now lies within l. See RFC 9420,
// Section 7.3.
func checkLifetime(l *Lifetime, now time.Time) error {
	if l == nil {
		return errors.New("mls: key_package leaf node has no lifetime")
	}
	t := now.Unix()
	if t < 0 || uint64(t) < l.NotBefore {
		return fmt.Errorf("mls: leaf node is not valid before %d, now is %d", l.NotBefore, t)
	}
	if uint64(t) > l.NotAfter {
		return fmt.Errorf("mls: leaf node expired at %d, now is %d", l.NotAfter, t)
	}
	return nil
}

// validateKeyPackage checks a KeyPackage received for an Add or about to be
// used in one: version mls10, cipher suite cs, a valid signature by its
// leaf's signature key, an init key of the suite distinct from the leaf's
// encryption key, every non-default KeyPackage extension listed in the
// leaf's capabilities, and a leaf node valid for a KeyPackage (see
// validateLeafNode, which explains groupExtensions and now). GREASE and
// other unknown values in capabilities are ignored. See RFC 9420,
// Section 10.1.
func validateKeyPackage(cs CipherSuite, kp *KeyPackage, groupExtensions Extensions, validate CredentialValidator, now time.Time) error {
	if err := validateKeyPackageFields(cs, kp); err != nil {
		return err
	}
	return validateLeafNode(cs, &kp.LeafNode, LeafNodeSourceKeyPackage, nil, 0, groupExtensions, validate, now)
}

// validateKeyPackageFields runs the checks of RFC 9420, Section 10.1 that
// concern the KeyPackage itself rather than its leaf node: version mls10,
// cipher suite cs, the format of the leaf's signature key and the
// KeyPackage's signature by it, an init key of the suite distinct from the
// leaf's encryption key, and every non-default KeyPackage extension listed
// in the leaf's capabilities. The caller checks the leaf node.
func validateKeyPackageFields(cs CipherSuite, kp *KeyPackage) error {
	if kp.Version != ProtocolMLS10 {
		return fmt.Errorf("mls: key package has unsupported version %d", kp.Version)
	}
	if kp.CipherSuite != cs {
		return fmt.Errorf("mls: key package is for suite %v, the group uses %v", kp.CipherSuite, cs)
	}
	if err := cs.ValidateSignaturePublicKey(kp.LeafNode.SignatureKey); err != nil {
		return fmt.Errorf("mls: key package signature_key: %w", err)
	}
	if err := kp.verifySignature(cs); err != nil {
		return err
	}
	if err := cs.ValidateHPKEPublicKey(kp.InitKey); err != nil {
		return fmt.Errorf("mls: key package init_key: %w", err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return errors.New("mls: key package init_key equals its leaf node's encryption_key")
	}
	return checkExtensionsListed("key package", kp.Extensions, &kp.LeafNode.Capabilities)
}
