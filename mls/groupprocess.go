package mls

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"
)

// This file is receiving framed messages: unprotecting them (RFC 9420,
// Section 6), checking who sent them (Section 6.1), caching proposals
// (Section 12.1) and processing commits (Section 12.4.2).

// Processed is the outcome of Process.
type Processed struct {
	// ContentType says which of the fields below are set.
	ContentType ContentType
	// Sender is the message's sender; for a member, Sender.Leaf.
	Sender Sender
	// AuthenticatedData is the message's authenticated_data.
	AuthenticatedData []byte
	// ApplicationData is the data of an application message.
	ApplicationData []byte
	// Epoch is the epoch the message was sent in.
	Epoch uint64
	// Proposal is a received proposal, and ProposalRef its reference.
	Proposal    *Proposal
	ProposalRef []byte
	// Commit is set for a commit: how it changed the group.
	Commit *CommitResult
}

// CommitResult is the membership change a commit made.
type CommitResult struct {
	// Added lists the new members.
	Added []Member
	// Removed lists the leaves removed, with their credentials.
	Removed []Member
	// Updated lists the leaves whose leaf node an Update or the committer's
	// path replaced.
	Updated []LeafIndex
	// RemovedSelf is true when the commit removed this member; the group
	// can no longer be used.
	RemovedSelf bool
	// Own is true when the commit was this member's pending commit.
	Own bool
	// ReInit is the ReInit proposal of the commit, if any: the group must
	// no longer be used, and a Welcome to the new group is expected
	// (RFC 9420, Section 11.2).
	ReInit *ReInitProposal
}

// Process reads an incoming PublicMessage or PrivateMessage of the group:
// it returns application data, caches a proposal, or applies a commit.
// A message that fails any check leaves the group unchanged. Our own
// pending commit coming back is merged. Application messages of an epoch
// in the past-epoch window still decrypt; handshake messages of another
// epoch fail with an *EpochError.
func (g *Group) Process(msg *MLSMessage) (*Processed, error) {
	if g.removed {
		return nil, ErrRemoved
	}
	if msg == nil {
		return nil, errors.New("mls: nil message")
	}
	if msg.Version != ProtocolMLS10 {
		return nil, fmt.Errorf("mls: message has unsupported version %d", msg.Version)
	}
	if g.pending != nil {
		// Our own commit, echoed by the relay: it was accepted. A
		// PrivateMessage of ours would not decrypt (its generation is
		// used), so it is recognised by its bytes.
		if enc, err := msg.Marshal(); err == nil && bytes.Equal(enc, g.pending.encoded) {
			ac := g.pending.ac
			res, err := g.MergePendingCommit()
			if err != nil {
				return nil, err
			}
			return &Processed{ContentType: ContentTypeCommit, Sender: ac.Content.Sender, AuthenticatedData: ac.Content.AuthenticatedData, Epoch: ac.Content.Epoch, Commit: res}, nil
		}
	}
	ac, past, err := g.unprotect(msg)
	if err != nil {
		return nil, err
	}
	c := &ac.Content
	out := &Processed{
		ContentType:       c.ContentType,
		Sender:            c.Sender,
		AuthenticatedData: bytes.Clone(c.AuthenticatedData),
		Epoch:             c.Epoch,
	}
	switch c.ContentType {
	case ContentTypeApplication:
		if err := g.verifyMemberSignature(ac, past); err != nil {
			return nil, err
		}
		out.ApplicationData = c.ApplicationData
		return out, nil
	case ContentTypeProposal:
		ref, err := g.processProposal(ac)
		if err != nil {
			return nil, err
		}
		out.Proposal, out.ProposalRef = c.Proposal, ref
		return out, nil
	case ContentTypeCommit:
		res, err := g.processCommit(ac)
		if err != nil {
			return nil, err
		}
		out.Commit = res
		return out, nil
	}
	return nil, fmt.Errorf("mls: unknown content type %d", c.ContentType)
}

// unprotect opens a PublicMessage or PrivateMessage. past is the past epoch
// whose keys opened an application message, nil for the current epoch.
func (g *Group) unprotect(msg *MLSMessage) (*AuthenticatedContent, *pastEpoch, error) {
	switch msg.WireFormat {
	case WireFormatPublicMessage:
		pm := msg.PublicMessage
		if pm == nil {
			return nil, nil, errors.New("mls: PublicMessage without its body")
		}
		ac, err := g.prot.unprotectPublic(pm)
		if err != nil {
			return nil, nil, err
		}
		return ac, nil, nil
	case WireFormatPrivateMessage:
		pm := msg.PrivateMessage
		if pm == nil {
			return nil, nil, errors.New("mls: PrivateMessage without its body")
		}
		if pm.Epoch != g.gc.Epoch && pm.ContentType == ContentTypeApplication && bytes.Equal(pm.GroupID, g.gc.GroupID) {
			for _, p := range g.past {
				if p.prot.epoch == pm.Epoch {
					ac, err := p.prot.unprotectPrivate(pm)
					if err != nil {
						return nil, nil, err
					}
					return ac, p, nil
				}
			}
		}
		ac, err := g.prot.unprotectPrivate(pm)
		if err != nil {
			return nil, nil, err
		}
		return ac, nil, nil
	}
	return nil, nil, fmt.Errorf("mls: wire format %d is not a framed message", msg.WireFormat)
}

// verifyMemberSignature checks the signature of content from a member, with
// the signature key of the sender's leaf in the epoch the content is of.
// See RFC 9420, Section 6.1.
func (g *Group) verifyMemberSignature(ac *AuthenticatedContent, past *pastEpoch) error {
	s := ac.Content.Sender
	if s.Type != SenderMember {
		return fmt.Errorf("%w: sender type %d cannot send %d content", ErrUnknownSender, s.Type, ac.Content.ContentType)
	}
	var key, ctx []byte
	if past != nil {
		key, ctx = past.sigKeys[s.Leaf], past.prot.groupContext
		if key == nil {
			return fmt.Errorf("%w: leaf %d was blank in epoch %d", ErrUnknownSender, s.Leaf, past.prot.epoch)
		}
	} else {
		var err error
		if key, err = g.memberKey(s.Leaf); err != nil {
			return err
		}
		ctx = g.gcBytes
	}
	if err := g.cs.verifyContent(key, ac, ctx); err != nil {
		return fmt.Errorf("%w: from leaf %d", ErrBadSignature, s.Leaf)
	}
	return nil
}

// externalSender returns the signature key of external sender i of the
// group's external_senders extension. See RFC 9420, Section 12.1.8.1.
func (g *Group) externalSender(i uint32) ([]byte, error) {
	data, ok := g.gc.Extensions.Find(ExtensionExternalSenders)
	if !ok {
		return nil, fmt.Errorf("%w: external sender %d but the group has no external_senders", ErrUnknownSender, i)
	}
	senders, err := UnmarshalExternalSenders(data)
	if err != nil {
		return nil, err
	}
	if int(i) >= len(senders) {
		return nil, fmt.Errorf("%w: external sender %d of %d", ErrUnknownSender, i, len(senders))
	}
	return senders[i].SignatureKey, nil
}

// proposalRef is the ProposalRef of a proposal's AuthenticatedContent.
// See RFC 9420, Section 5.2.
func (cs CipherSuite) proposalRef(ac *AuthenticatedContent) ([]byte, error) {
	data, err := ac.Marshal()
	if err != nil {
		return nil, err
	}
	return cs.RefHash("MLS 1.0 Proposal Reference", data)
}

// processProposal authenticates a proposal, validates it on its own and
// caches it for commits of this epoch to reference. See RFC 9420,
// Sections 12.1 and 12.1.8.
func (g *Group) processProposal(ac *AuthenticatedContent) ([]byte, error) {
	c := &ac.Content
	p := c.Proposal
	switch c.Sender.Type {
	case SenderMember:
		if err := g.verifyMemberSignature(ac, nil); err != nil {
			return nil, err
		}
		if p.Type == ProposalTypeExternalInit {
			return nil, errors.New("mls: ExternalInit proposal sent by reference")
		}
	case SenderExternal:
		key, err := g.externalSender(c.Sender.ExternalIndex)
		if err != nil {
			return nil, err
		}
		if err := g.cs.verifyContent(key, ac, nil); err != nil {
			return nil, fmt.Errorf("%w: from external sender %d", ErrBadSignature, c.Sender.ExternalIndex)
		}
		switch p.Type {
		case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeReInit, ProposalTypeGroupContextExtensions:
		default:
			return nil, fmt.Errorf("mls: external sender cannot propose type 0x%04x", uint16(p.Type))
		}
	case SenderNewMemberProposal:
		if p.Type != ProposalTypeAdd {
			return nil, fmt.Errorf("mls: new_member_proposal sender with a proposal of type 0x%04x, want add", uint16(p.Type))
		}
		if err := g.cs.verifyContent(p.Add.KeyPackage.LeafNode.SignatureKey, ac, nil); err != nil {
			return nil, fmt.Errorf("%w: from new_member_proposal", ErrBadSignature)
		}
	default:
		return nil, fmt.Errorf("%w: sender type %d cannot send proposals", ErrUnknownSender, c.Sender.Type)
	}
	if err := g.validateProposal(p, c.Sender, g.tree, g.gc.Extensions); err != nil {
		return nil, err
	}
	ref, err := g.cs.proposalRef(ac)
	if err != nil {
		return nil, err
	}
	if g.findProposal(ref) == nil {
		g.proposals = append(g.proposals, &cachedProposal{ref: ref, proposal: p, sender: c.Sender})
	}
	return ref, nil
}

func (g *Group) findProposal(ref []byte) *cachedProposal {
	for _, cp := range g.proposals {
		if hmac.Equal(cp.ref, ref) {
			return cp
		}
	}
	return nil
}

// processCommit authenticates a commit, stages the new epoch on copies of
// the state and, if every check passes, makes it current. See RFC 9420,
// Section 12.4.2.
func (g *Group) processCommit(ac *AuthenticatedContent) (*CommitResult, error) {
	c := &ac.Content
	switch c.Sender.Type {
	case SenderMember:
		if err := g.verifyMemberSignature(ac, nil); err != nil {
			return nil, err
		}
		if c.Sender.Leaf == g.priv.Leaf {
			return g.ownCommitEchoed(ac)
		}
	case SenderNewMemberCommit:
		if c.Commit.Path == nil {
			return nil, errors.New("mls: external commit without a path")
		}
		if err := g.cs.verifyContent(c.Commit.Path.LeafNode.SignatureKey, ac, g.gcBytes); err != nil {
			return nil, fmt.Errorf("%w: from external committer", ErrBadSignature)
		}
	default:
		return nil, fmt.Errorf("%w: sender type %d cannot commit", ErrUnknownSender, c.Sender.Type)
	}
	if ac.WireFormat == WireFormatPublicMessage && len(ac.Auth.ConfirmationTag) == 0 {
		return nil, errors.New("mls: commit without a confirmation tag")
	}
	props, err := g.resolveProposals(c.Commit.Proposals, c.Sender)
	if err != nil {
		return nil, err
	}
	st, err := g.stageCommit(ac, props)
	if err != nil {
		return nil, err
	}
	// A removed member cannot derive the new epoch (the path is not
	// encrypted to it), so for it the signature and membership tag are
	// all that authenticate the commit.
	if !st.removedSelf && !hmac.Equal(st.confirmationTag, ac.Auth.ConfirmationTag) {
		return nil, errors.New("mls: commit's confirmation tag is invalid")
	}
	return g.adopt(st), nil
}

// ownCommitEchoed handles our own commit coming back from the relay: if it
// is the pending commit, merge it.
func (g *Group) ownCommitEchoed(ac *AuthenticatedContent) (*CommitResult, error) {
	if g.pending == nil {
		return nil, errors.New("mls: commit from our own leaf but no commit is pending")
	}
	if !hmac.Equal(g.pending.st.confirmationTag, ac.Auth.ConfirmationTag) || !bytes.Equal(g.pending.ac.Auth.Signature, ac.Auth.Signature) {
		return nil, errors.New("mls: commit from our own leaf is not the pending commit")
	}
	return g.MergePendingCommit()
}

// resolveProposals turns a commit's ProposalOrRef list into proposals with
// their senders, looking references up in this epoch's cache. See RFC 9420,
// Section 12.4.
func (g *Group) resolveProposals(list []ProposalOrRef, committer Sender) ([]committedProposal, error) {
	out := make([]committedProposal, 0, len(list))
	for i := range list {
		por := &list[i]
		switch por.Type {
		case ProposalOrRefProposal:
			out = append(out, committedProposal{proposal: por.Proposal, sender: committer})
		case ProposalOrRefReference:
			cp := g.findProposal(por.Reference)
			if cp == nil {
				return nil, fmt.Errorf("mls: commit references unknown proposal %x", por.Reference)
			}
			out = append(out, committedProposal{proposal: cp.proposal, sender: cp.sender, ref: cp.ref})
		default:
			return nil, fmt.Errorf("mls: unknown ProposalOrRef type %d", por.Type)
		}
	}
	return out, nil
}
