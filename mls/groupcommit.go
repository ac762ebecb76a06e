package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
)

// This file is sending proposals (RFC 9420, Section 12.1) and creating a
// commit (Section 12.4.1) with its Welcome (Section 12.4.3.1) and
// GroupInfo, staged as the pending commit until the relay accepts it.

// pendingCommit is a commit this member made and sent, staged until the
// relay accepts it.
type pendingCommit struct {
	ac      *AuthenticatedContent
	st      *stagedCommit
	encoded []byte
}

// CommitOptions says what a commit proposes by value, in addition to every
// valid proposal received by reference in the epoch.
type CommitOptions struct {
	// Add are the KeyPackages of members to add.
	Add []*KeyPackage
	// Remove are the leaves of members to remove.
	Remove []LeafIndex
	// PSKs are pre-shared keys to inject.
	PSKs []PreSharedKeyID
	// GroupContextExtensions, if not nil, replace the group's extensions.
	GroupContextExtensions Extensions
	// ForcePath includes an UpdatePath even when the proposals do not
	// require one, refreshing the committer's keys (an update).
	ForcePath bool
	// OmitRatchetTree leaves the ratchet_tree extension out of the
	// Welcome's GroupInfo, for groups that distribute the tree out of
	// band.
	OmitRatchetTree bool
	// GroupInfo asks for a signed GroupInfo of the new epoch in
	// CommitOutput, with the ratchet tree unless OmitRatchetTree.
	GroupInfo bool
	// ExternalPub adds an external_pub extension to that GroupInfo so
	// that others can join by external commit; it implies GroupInfo.
	ExternalPub bool
	// AuthenticatedData is sent with the commit.
	AuthenticatedData []byte
}

// CommitOutput is what Commit makes.
type CommitOutput struct {
	// Commit is the message to send to the group.
	Commit *MLSMessage
	// Welcome is for the added members; nil when there are none.
	Welcome *MLSMessage
	// GroupInfo describes the new epoch, signed by this member, when
	// CommitOptions.GroupInfo or ExternalPub asked for it.
	GroupInfo *GroupInfo
}

// Commit makes a commit of every proposal received by reference in this
// epoch (minus those that cannot be committed together, preferring Removes
// over Updates of the same leaf) and the proposals of opts, stages the new
// epoch as the pending commit and returns the messages to send. The group
// stays in its current epoch until MergePendingCommit (or Process of the
// commit coming back). See RFC 9420, Section 12.4.1.
func (g *Group) Commit(opts CommitOptions) (*CommitOutput, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if g.pending != nil {
		return nil, errors.New("mls: a commit is already pending; merge or discard it first")
	}
	// Hash the current tree before copying it, so that the copy starts
	// with every subtree hash cached: a commit then rehashes only the
	// paths it changes, not the whole tree.
	if _, err := g.tree.rootHash(); err != nil {
		return nil, err
	}
	me := Sender{Type: SenderMember, Leaf: g.priv.Leaf}
	props, pors := g.chooseProposals(opts)
	st := &stagedCommit{tree: g.tree.clone(), priv: g.priv.clone(), committer: g.priv.Leaf}
	eff, err := g.applyProposals(st.tree, props, me)
	if err != nil {
		return nil, err
	}
	st.eff = eff
	if eff.ownUpdate != nil {
		return nil, errors.New("mls: internal error: own Update chosen for commit")
	}
	commit := &Commit{Proposals: pors}
	if eff.pathRequired || opts.ForcePath {
		own := g.tree.leaf(g.priv.Leaf)
		st.path, err = st.tree.createUpdatePath(g.priv.Leaf, own, g.sigKey, g.gc.GroupID, eff.added, g.provisionalContext(eff.extensions))
		if err != nil {
			return nil, err
		}
		st.priv = st.path.Keys
		st.commitSecret = st.path.CommitSecret
		commit.Path = st.path.Path
		eff.updated = append(eff.updated, g.priv.Leaf)
	} else {
		st.priv.prune(st.tree)
	}
	ac := &AuthenticatedContent{
		WireFormat: g.handshakeWireFormat(),
		Content: FramedContent{
			GroupID:           g.gc.GroupID,
			Epoch:             g.gc.Epoch,
			Sender:            me,
			AuthenticatedData: bytes.Clone(opts.AuthenticatedData),
			ContentType:       ContentTypeCommit,
			Commit:            commit,
		},
	}
	if ac.Auth.Signature, err = g.cs.signContent(g.sigKey, ac.WireFormat, &ac.Content, g.gcBytes); err != nil {
		return nil, err
	}
	if err := g.finishEpoch(st, ac); err != nil {
		return nil, err
	}
	ac.Auth.ConfirmationTag = st.confirmationTag
	out := &CommitOutput{}
	if out.Welcome, err = g.welcome(st, opts); err != nil {
		return nil, err
	}
	if opts.GroupInfo || opts.ExternalPub {
		if out.GroupInfo, err = g.epochGroupInfo(st, opts.ExternalPub, !opts.OmitRatchetTree); err != nil {
			return nil, err
		}
	}
	if out.Commit, err = g.wrap(ac); err != nil {
		return nil, err
	}
	encoded, err := out.Commit.Marshal()
	if err != nil {
		return nil, err
	}
	g.pending = &pendingCommit{ac: ac, st: st, encoded: encoded}
	return out, nil
}

// chooseProposals lists the proposals of a commit: those received by
// reference that can be committed, then opts' by value. See RFC 9420,
// Sections 12.2 and 12.4.1.
func (g *Group) chooseProposals(opts CommitOptions) ([]committedProposal, []ProposalOrRef) {
	var props []committedProposal
	var pors []ProposalOrRef
	add := func(p *Proposal, sender Sender, ref []byte) {
		props = append(props, committedProposal{proposal: p, sender: sender, ref: ref})
		if ref != nil {
			pors = append(pors, ProposalOrRef{Type: ProposalOrRefReference, Reference: ref})
		} else {
			pors = append(pors, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p})
		}
	}
	removed := map[LeafIndex]bool{}
	for _, l := range opts.Remove {
		removed[l] = true
	}
	for _, cp := range g.proposals {
		if cp.proposal.Type == ProposalTypeRemove && !cp.declined {
			removed[cp.proposal.Remove.Removed] = true
		}
	}
	me := g.priv.Leaf
	updated := map[LeafIndex]int{}
	gce := opts.GroupContextExtensions != nil
	var reinit *cachedProposal
	for _, cp := range g.proposals {
		if cp.declined {
			continue
		}
		switch cp.proposal.Type {
		case ProposalTypeUpdate:
			l := cp.sender.Leaf
			// Section 12.2: not our own, a Remove wins, the latest Update
			// wins.
			if l == me || removed[l] {
				continue
			}
			if i, ok := updated[l]; ok {
				props[i] = committedProposal{proposal: cp.proposal, sender: cp.sender, ref: cp.ref}
				pors[i] = ProposalOrRef{Type: ProposalOrRefReference, Reference: cp.ref}
				continue
			}
			updated[l] = len(props)
		case ProposalTypeRemove:
			l := cp.proposal.Remove.Removed
			if l == me || slices.Contains(opts.Remove, l) || g.alreadyChosen(props, l) {
				continue
			}
		case ProposalTypeGroupContextExtensions:
			if gce {
				continue
			}
			gce = true
		case ProposalTypeReInit:
			// Section 12.2: other proposals are preferred over a ReInit,
			// which is committed alone.
			if reinit == nil {
				reinit = cp
			}
			continue
		}
		add(cp.proposal, cp.sender, cp.ref)
	}
	me2 := Sender{Type: SenderMember, Leaf: me}
	if opts.GroupContextExtensions != nil {
		add(&Proposal{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: cloneExtensions(opts.GroupContextExtensions)}}, me2, nil)
	}
	for _, l := range opts.Remove {
		add(&Proposal{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: l}}, me2, nil)
	}
	for _, kp := range opts.Add {
		add(&Proposal{Type: ProposalTypeAdd, Add: &AddProposal{KeyPackage: *kp}}, me2, nil)
	}
	for _, id := range opts.PSKs {
		add(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKeyProposal{PSK: id}}, me2, nil)
	}
	if len(props) == 0 && reinit != nil {
		add(reinit.proposal, reinit.sender, reinit.ref)
	}
	return props, pors
}

func (g *Group) alreadyChosen(props []committedProposal, removed LeafIndex) bool {
	for _, cp := range props {
		if cp.proposal.Type == ProposalTypeRemove && cp.proposal.Remove.Removed == removed {
			return true
		}
	}
	return false
}

// groupInfoExtensions returns the GroupInfo extensions of a staged epoch:
// the ratchet tree if asked for.
func groupInfoExtensions(st *stagedCommit, withTree bool) (Extensions, error) {
	if !withTree {
		return Extensions{}, nil
	}
	wire, err := st.tree.wire()
	if err != nil {
		return nil, err
	}
	data, err := wire.Marshal()
	if err != nil {
		return nil, err
	}
	return Extensions{{Type: ExtensionRatchetTree, Data: data}}, nil
}

// epochGroupInfo signs a GroupInfo for the staged epoch.
func (g *Group) epochGroupInfo(st *stagedCommit, externalPub, withTree bool) (*GroupInfo, error) {
	exts, err := groupInfoExtensions(st, withTree)
	if err != nil {
		return nil, err
	}
	if externalPub {
		return newExternalGroupInfo(g.cs, &st.gc, st.secrets, exts, st.confirmationTag, st.committer, g.sigKey)
	}
	return newGroupInfo(g.cs, &st.gc, exts, st.confirmationTag, st.committer, g.sigKey)
}

// welcome makes the Welcome of a staged commit for its added members, nil
// when there are none. See RFC 9420, Section 12.4.3.1.
func (g *Group) welcome(st *stagedCommit, opts CommitOptions) (*MLSMessage, error) {
	if len(st.eff.added) == 0 {
		return nil, nil
	}
	gi, err := g.epochGroupInfo(st, false, !opts.OmitRatchetTree)
	if err != nil {
		return nil, err
	}
	members := make([]welcomeMember, len(st.eff.added))
	for i, l := range st.eff.added {
		members[i].KeyPackage = st.eff.addedKPs[i]
		if st.path != nil {
			if _, members[i].PathSecret, err = st.path.pathSecretFor(st.tree, l); err != nil {
				return nil, err
			}
		}
	}
	w, err := buildWelcome(g.cs, gi, st.joiner, st.eff.psks, st.pskSecret, members)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatWelcome, Welcome: w}, nil
}

// MergePendingCommit makes the pending commit's epoch current, once the
// relay has accepted the commit.
func (g *Group) MergePendingCommit() (*CommitResult, error) {
	if g.pending == nil {
		return nil, errors.New("mls: no commit is pending")
	}
	res := g.adopt(g.pending.st)
	res.Own = true
	return res, nil
}

// DiscardPendingCommit drops the pending commit, when the relay accepted
// another commit for this epoch; the proposals it included by reference
// stay cached.
func (g *Group) DiscardPendingCommit() { g.pending = nil }

// DeclineProposal marks a received proposal, named by its reference, as
// one the application's policy does not allow this member to commit
// (Section 12.2 lets applications add rules to proposal list validation,
// and Section 12.4 has a committer include the proposals valid under that
// policy). This member's commits leave it out, and it no longer holds
// back application data; a commit by another member that includes it is
// still processed, so the application sees what that commit changed. It
// says whether the proposal was cached.
func (g *Group) DeclineProposal(ref []byte) bool {
	if cp := g.findProposal(ref); cp != nil {
		cp.declined = true
		return true
	}
	return false
}

// HasPendingCommit reports whether a commit is waiting to be merged or
// discarded.
func (g *Group) HasPendingCommit() bool { return g.pending != nil }

// GroupInfo returns a signed GroupInfo of the current epoch for external
// joiners: with external_pub, and the ratchet tree unless omitTree. See
// RFC 9420, Section 12.4.3.2.
func (g *Group) GroupInfo(omitTree bool) (*GroupInfo, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	st := &stagedCommit{tree: g.tree}
	exts, err := groupInfoExtensions(st, !omitTree)
	if err != nil {
		return nil, err
	}
	return newExternalGroupInfo(g.cs, &g.gc, g.secrets, exts, g.confirmationTag, g.priv.Leaf, g.sigKey)
}

// propose signs and sends a proposal of this member, caching it so that
// our own commits can include it. See RFC 9420, Section 12.1.
func (g *Group) propose(p *Proposal) (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	me := Sender{Type: SenderMember, Leaf: g.priv.Leaf}
	if err := g.validateProposal(p, me, g.tree, g.gc.Extensions); err != nil {
		return nil, err
	}
	ac := &AuthenticatedContent{
		WireFormat: g.handshakeWireFormat(),
		Content: FramedContent{
			GroupID:     g.gc.GroupID,
			Epoch:       g.gc.Epoch,
			Sender:      me,
			ContentType: ContentTypeProposal,
			Proposal:    p,
		},
	}
	var err error
	if ac.Auth.Signature, err = g.cs.signContent(g.sigKey, ac.WireFormat, &ac.Content, g.gcBytes); err != nil {
		return nil, err
	}
	ref, err := g.cs.proposalRef(ac)
	if err != nil {
		return nil, err
	}
	msg, err := g.wrap(ac)
	if err != nil {
		return nil, err
	}
	g.proposals = append(g.proposals, &cachedProposal{ref: ref, proposal: p, sender: me})
	return msg, nil
}

// ProposeAdd proposes adding the owner of kp. See RFC 9420, Section 12.1.1.
func (g *Group) ProposeAdd(kp *KeyPackage) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalTypeAdd, Add: &AddProposal{KeyPackage: *kp}})
}

// ProposeRemove proposes removing the member at leaf. See RFC 9420,
// Section 12.1.3.
func (g *Group) ProposeRemove(leaf LeafIndex) (*MLSMessage, error) {
	if leaf == g.priv.Leaf {
		return nil, errors.New("mls: a member cannot propose its own removal")
	}
	return g.propose(&Proposal{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: leaf}})
}

// ProposePSK proposes injecting a pre-shared key. See RFC 9420,
// Section 12.1.4.
func (g *Group) ProposePSK(id PreSharedKeyID) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKeyProposal{PSK: id}})
}

// ProposeGroupContextExtensions proposes replacing the group's extensions.
// See RFC 9420, Section 12.1.7.
func (g *Group) ProposeGroupContextExtensions(exts Extensions) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: cloneExtensions(exts)}})
}

// ProposeReInit proposes closing the group for a new one with the given
// parameters. Once committed, no member sends in this group any more.
// See RFC 9420, Sections 11.2 and 12.1.5.
func (g *Group) ProposeReInit(groupID []byte, version ProtocolVersion, cs CipherSuite, exts Extensions) (*MLSMessage, error) {
	return g.propose(&Proposal{Type: ProposalTypeReInit, ReInit: &ReInitProposal{GroupID: bytes.Clone(groupID), Version: version, CipherSuite: cs, Extensions: cloneExtensions(exts)}})
}

// ProposeUpdate proposes a fresh encryption key for our leaf, keeping the
// rest of the leaf node. See RFC 9420, Section 12.1.2.
func (g *Group) ProposeUpdate() (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	key, err := g.cs.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	leaf, err := cloneLeafNode(g.tree.leaf(g.priv.Leaf))
	if err != nil {
		return nil, err
	}
	leaf.EncryptionKey = key.PublicKey()
	leaf.Source = LeafNodeSourceUpdate
	leaf.Lifetime = nil
	leaf.ParentHash = nil
	if err := leaf.sign(g.cs, g.sigKey, g.gc.GroupID, g.priv.Leaf); err != nil {
		return nil, err
	}
	msg, err := g.propose(&Proposal{Type: ProposalTypeUpdate, Update: &UpdateProposal{LeafNode: *leaf}})
	if err != nil {
		return nil, err
	}
	g.pendingUpdates = append(g.pendingUpdates, key)
	return msg, nil
}

// NewPSKNonce returns a fresh random nonce for a PreSharedKeyID of this
// group's suite. See RFC 9420, Section 8.4.
func (g *Group) NewPSKNonce() ([]byte, error) {
	n := make([]byte, g.cs.SecretSize())
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("mls: %w", err)
	}
	return n, nil
}
