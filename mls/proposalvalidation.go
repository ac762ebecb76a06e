package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file validates proposals one by one (RFC 9420, Section 12.1) and as
// the list of a commit (Section 12.2), and applies a list to a staged copy
// of the ratchet tree and GroupContext (Section 12.3).

// committedProposal is one proposal of a commit's list, with the sender
// that proposed it (the committer for proposals by value) and its
// reference (nil for proposals by value).
type committedProposal struct {
	proposal *Proposal
	sender   Sender
	ref      []byte
}

// checkLeafNode runs the checks of RFC 9420, Section 7.3 on a leaf node
// that needs the application or the group's extensions: key formats, the
// source, the credential, extensions listed in the capabilities, support
// for the group's extensions and required capabilities, and the lifetime
// of a key_package leaf at now (zero now skips it). The signature and the
// uniqueness of keys in the tree are the tree's to check.
//
// Unlike validateLeafNode it does not require the capabilities to list the
// group's cipher suite and version: Section 7.3 does not ask for that, and
// the official passive-client vectors have leaves that omit their suite.
func (g *Group) checkLeafNode(leaf *LeafNode, source LeafNodeSource, exts Extensions, now time.Time) error {
	cs := g.cs
	if leaf.Source != source {
		return fmt.Errorf("mls: leaf node has source %d where %d is required", leaf.Source, source)
	}
	if err := cs.ValidateSignaturePublicKey(leaf.SignatureKey); err != nil {
		return fmt.Errorf("mls: leaf node signature_key: %w", err)
	}
	if err := cs.ValidateHPKEPublicKey(leaf.EncryptionKey); err != nil {
		return fmt.Errorf("mls: leaf node encryption_key: %w", err)
	}
	if err := g.cfg.ValidateCredential(cs, &leaf.Credential, leaf.SignatureKey); err != nil {
		return fmt.Errorf("mls: credential rejected: %w", err)
	}
	if !slices.Contains(leaf.Capabilities.Credentials, leaf.Credential.Type) {
		return fmt.Errorf("mls: leaf node capabilities do not list its own credential type 0x%04x", uint16(leaf.Credential.Type))
	}
	if err := checkExtensionsListed("leaf node", leaf.Extensions, &leaf.Capabilities); err != nil {
		return err
	}
	if err := checkSupportsGroup(&leaf.Capabilities, exts); err != nil {
		return err
	}
	if source == LeafNodeSourceKeyPackage && !now.IsZero() {
		return checkLifetime(leaf.Lifetime, now)
	}
	return nil
}

// checkKeyPackage validates a KeyPackage of an Add proposal. See RFC 9420,
// Sections 10.1 and 12.1.1.
func (g *Group) checkKeyPackage(kp *KeyPackage, exts Extensions) error {
	cs := g.cs
	if err := validateKeyPackageFields(cs, kp); err != nil {
		return err
	}
	if err := kp.LeafNode.verifySignature(cs, nil, 0); err != nil {
		return err
	}
	return g.checkLeafNode(&kp.LeafNode, LeafNodeSourceKeyPackage, exts, g.cfg.now())
}

// validateProposal checks one proposal on its own against tree and the
// GroupContext extensions exts. See RFC 9420, Section 12.1.
func (g *Group) validateProposal(p *Proposal, sender Sender, tree *ratchetTree, exts Extensions) error {
	switch p.Type {
	case ProposalTypeAdd:
		return g.checkKeyPackage(&p.Add.KeyPackage, exts)
	case ProposalTypeUpdate:
		if sender.Type != SenderMember {
			return errors.New("mls: Update proposal from a non-member")
		}
		old := tree.leaf(sender.Leaf)
		if old == nil {
			return fmt.Errorf("mls: Update proposal from blank leaf %d", sender.Leaf)
		}
		leaf := &p.Update.LeafNode
		if bytes.Equal(leaf.EncryptionKey, old.EncryptionKey) {
			return fmt.Errorf("mls: Update proposal of leaf %d keeps its encryption key", sender.Leaf)
		}
		if err := g.checkLeafNode(leaf, LeafNodeSourceUpdate, exts, time.Time{}); err != nil {
			return err
		}
		return tree.validateLeafNode(g.gc.GroupID, sender.Leaf, leaf)
	case ProposalTypeRemove:
		if tree.leaf(p.Remove.Removed) == nil {
			return fmt.Errorf("mls: Remove proposal of blank or absent leaf %d", p.Remove.Removed)
		}
		return nil
	case ProposalTypePSK:
		id := &p.PreSharedKey.PSK
		if len(id.Nonce) != g.cs.SecretSize() {
			return fmt.Errorf("mls: PreSharedKey proposal has a %d-byte nonce, want %d", len(id.Nonce), g.cs.SecretSize())
		}
		if id.Type == PSKResumption && id.Usage != ResumptionApplication && !g.initialCommit(sender) {
			// Section 12.1.4: reinit and branch PSKs belong only to the
			// commit that sets up the new group of a reinitialization
			// or branch (Sections 11.2 and 11.3).
			return fmt.Errorf("mls: PreSharedKey proposal with resumption usage %d outside a reinitialization or branch", id.Usage)
		}
		return nil
	case ProposalTypeReInit:
		if p.ReInit.Version < g.gc.Version {
			return fmt.Errorf("mls: ReInit to version %d, older than the group's", p.ReInit.Version)
		}
		return nil
	case ProposalTypeExternalInit:
		return nil
	case ProposalTypeGroupContextExtensions:
		ext := p.GroupContextExtensions.Extensions
		if err := ext.validateUnique(); err != nil {
			return err
		}
		return validateGroupExtensions(g.cs, ext, g.cfg.ValidateCredential)
	}
	return fmt.Errorf("mls: unsupported proposal type 0x%04x", uint16(p.Type))
}

// proposalEffects is what applying a commit's proposal list did.
type proposalEffects struct {
	extensions   Extensions
	added        []LeafIndex
	addedKPs     []*KeyPackage
	removed      []Member
	updated      []LeafIndex
	psks         []PreSharedKeyID
	externalInit *ExternalInitProposal
	reinit       *ReInitProposal
	pathRequired bool
	// ownUpdate is set when the list applies an Update of our own leaf
	// that another member committed.
	ownUpdate *LeafNode
}

// applyProposals validates a commit's proposal list (RFC 9420, Section
// 12.2) and applies it to tree, a staged copy (Section 12.3). committer is
// the commit's sender.
func (g *Group) applyProposals(tree *ratchetTree, props []committedProposal, committer Sender) (*proposalEffects, error) {
	eff := &proposalEffects{extensions: g.gc.Extensions, pathRequired: len(props) == 0}
	external := committer.Type == SenderNewMemberCommit
	var gce, updates, removes, adds, psks, inits, reinits []*committedProposal
	for i := range props {
		cp := &props[i]
		switch cp.proposal.Type {
		case ProposalTypeGroupContextExtensions:
			gce = append(gce, cp)
		case ProposalTypeUpdate:
			updates = append(updates, cp)
		case ProposalTypeRemove:
			removes = append(removes, cp)
		case ProposalTypeAdd:
			adds = append(adds, cp)
		case ProposalTypePSK:
			psks = append(psks, cp)
		case ProposalTypeExternalInit:
			inits = append(inits, cp)
		case ProposalTypeReInit:
			reinits = append(reinits, cp)
		default:
			return nil, fmt.Errorf("mls: unsupported proposal type 0x%04x in commit", uint16(cp.proposal.Type))
		}
	}

	if external {
		// Section 12.2, external commits.
		if len(inits) != 1 {
			return nil, fmt.Errorf("mls: external commit has %d ExternalInit proposals, want 1", len(inits))
		}
		if len(removes) > 1 {
			return nil, errors.New("mls: external commit has more than one Remove proposal")
		}
		if len(gce)+len(updates)+len(adds)+len(reinits) > 0 {
			return nil, errors.New("mls: external commit may only hold ExternalInit, Remove and PreSharedKey proposals")
		}
		for _, cp := range props {
			if cp.ref != nil {
				return nil, errors.New("mls: external commit references a proposal")
			}
		}
	} else {
		if len(inits) > 0 {
			return nil, errors.New("mls: commit by a member contains an ExternalInit proposal")
		}
		if len(gce) > 1 {
			return nil, errors.New("mls: commit contains more than one GroupContextExtensions proposal")
		}
		if len(reinits) > 0 && len(props) > 1 {
			return nil, errors.New("mls: commit contains a ReInit proposal together with other proposals")
		}
	}

	exts := g.gc.Extensions
	if len(gce) == 1 {
		eff.pathRequired = true
		if err := g.validateProposal(gce[0].proposal, gce[0].sender, tree, gce[0].proposal.GroupContextExtensions.Extensions); err != nil {
			return nil, err
		}
		exts = gce[0].proposal.GroupContextExtensions.Extensions
		eff.extensions = exts
	}

	touched := map[LeafIndex]bool{}
	for _, cp := range updates {
		eff.pathRequired = true
		if cp.ref == nil {
			return nil, errors.New("mls: commit contains an Update proposal by value")
		}
		l := cp.sender.Leaf
		if committer.Type == SenderMember && l == committer.Leaf {
			return nil, errors.New("mls: commit contains an Update proposal of the committer")
		}
		if touched[l] {
			return nil, fmt.Errorf("mls: commit updates or removes leaf %d more than once", l)
		}
		touched[l] = true
		if err := g.validateProposal(cp.proposal, cp.sender, tree, exts); err != nil {
			return nil, err
		}
		if err := tree.updateLeaf(l, &cp.proposal.Update.LeafNode); err != nil {
			return nil, err
		}
		eff.updated = append(eff.updated, l)
		if l == g.priv.Leaf {
			eff.ownUpdate = &cp.proposal.Update.LeafNode
		}
	}
	for _, cp := range removes {
		eff.pathRequired = true
		l := cp.proposal.Remove.Removed
		if committer.Type == SenderMember && l == committer.Leaf {
			return nil, errors.New("mls: commit removes the committer")
		}
		if touched[l] {
			return nil, fmt.Errorf("mls: commit updates or removes leaf %d more than once", l)
		}
		touched[l] = true
		leaf := tree.leaf(l)
		if leaf == nil {
			return nil, fmt.Errorf("mls: Remove proposal of blank or absent leaf %d", l)
		}
		eff.removed = append(eff.removed, Member{Leaf: l, Credential: cloneCredential(leaf.Credential), SignatureKey: bytes.Clone(leaf.SignatureKey)})
		if err := tree.removeLeaf(l); err != nil {
			return nil, err
		}
	}
	for _, cp := range adds {
		kp := &cp.proposal.Add.KeyPackage
		if err := g.validateProposal(cp.proposal, cp.sender, tree, exts); err != nil {
			return nil, err
		}
		// Section 12.2: no client twice, identified by signature key.
		err := tree.leafNodes(func(i LeafIndex, l *LeafNode) error {
			if bytes.Equal(l.SignatureKey, kp.LeafNode.SignatureKey) {
				return fmt.Errorf("mls: Add proposal for a client already at leaf %d", i)
			}
			if bytes.Equal(l.EncryptionKey, kp.LeafNode.EncryptionKey) {
				return fmt.Errorf("mls: Add proposal reuses the encryption key of leaf %d", i)
			}
			// Section 7.3: credential types supported both ways.
			if !slices.Contains(l.Capabilities.Credentials, kp.LeafNode.Credential.Type) {
				return fmt.Errorf("mls: Add proposal has credential type 0x%04x, which leaf %d does not support", uint16(kp.LeafNode.Credential.Type), i)
			}
			if !slices.Contains(kp.LeafNode.Capabilities.Credentials, l.Credential.Type) {
				return fmt.Errorf("mls: Add proposal does not support credential type 0x%04x of leaf %d", uint16(l.Credential.Type), i)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		l, err := tree.addLeaf(&kp.LeafNode)
		if err != nil {
			return nil, err
		}
		eff.added = append(eff.added, l)
		eff.addedKPs = append(eff.addedKPs, kp)
	}
	for i, cp := range psks {
		if err := g.validateProposal(cp.proposal, cp.sender, tree, exts); err != nil {
			return nil, err
		}
		id := cp.proposal.PreSharedKey.PSK
		enc, err := marshal(id.marshal)
		if err != nil {
			return nil, err
		}
		for _, prev := range psks[:i] {
			p, _ := marshal(prev.proposal.PreSharedKey.PSK.marshal)
			if bytes.Equal(p, enc) {
				return nil, errors.New("mls: commit contains the same PreSharedKey proposal twice")
			}
		}
		eff.psks = append(eff.psks, id)
	}
	if n := countResumptionPSKs(eff.psks); n > 1 {
		return nil, fmt.Errorf("mls: commit has %d reinit or branch PSKs, at most one is allowed", n)
	}
	if len(inits) == 1 {
		eff.pathRequired = true
		eff.externalInit = inits[0].proposal.ExternalInit
	}
	if len(reinits) == 1 {
		if err := g.validateProposal(reinits[0].proposal, reinits[0].sender, tree, exts); err != nil {
			return nil, err
		}
		eff.reinit = reinits[0].proposal.ReInit
	}
	if len(gce) == 1 {
		// Section 12.1.7: every remaining member supports the new
		// extensions.
		err := tree.leafNodes(func(i LeafIndex, l *LeafNode) error {
			if err := checkSupportsGroup(&l.Capabilities, exts); err != nil {
				return fmt.Errorf("mls: leaf %d: %w", i, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return eff, nil
}

// initialCommit reports whether a proposal from sender belongs to the
// commit that sets up a new group: our own, at epoch 0. Nobody else
// processes that commit; the others join at epoch 1 by Welcome.
func (g *Group) initialCommit(sender Sender) bool {
	return g.gc.Epoch == 0 && sender.Type == SenderMember && sender.Leaf == g.priv.Leaf
}

// countResumptionPSKs counts the PSKs of resumption type with usage reinit
// or branch. See RFC 9420, Section 12.4.3.1.
func countResumptionPSKs(ids []PreSharedKeyID) int {
	n := 0
	for _, id := range ids {
		if id.Type == PSKResumption && id.Usage != ResumptionApplication {
			n++
		}
	}
	return n
}
