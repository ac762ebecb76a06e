package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
)

// This file is joining a group by external commit, RFC 9420,
// Section 12.4.3.2.

// ExternalJoinOptions tunes JoinExternal.
type ExternalJoinOptions struct {
	// Resync, if set, is the leaf of our old self in the group, which the
	// external commit removes (RFC 9420, Section 12.4.3.2); its credential
	// must be the one we join with.
	Resync *LeafIndex
	// PSKs are pre-shared keys to inject.
	PSKs []PreSharedKeyID
	// AuthenticatedData is sent with the commit.
	AuthenticatedData []byte
}

// noLeaf is the leaf index of a joiner that has no leaf yet.
const noLeaf = LeafIndex(math.MaxUint32)

// JoinExternal joins the group that gi describes by external commit, with
// a new leaf for cred signed by sigKey. tree is the group's ratchet tree
// when gi has no ratchet_tree extension. It returns the group at the new
// epoch and the commit to send; if the relay refuses the commit (another
// commit won the epoch), drop the group and try again with a newer
// GroupInfo. See RFC 9420, Section 12.4.3.2.
func JoinExternal(cfg Config, gi *GroupInfo, tree RatchetTree, cred Credential, sigKey *SignaturePrivateKey, opts ExternalJoinOptions) (*Group, *MLSMessage, error) {
	if err := cfg.check(); err != nil {
		return nil, nil, err
	}
	if gi == nil || sigKey == nil {
		return nil, nil, errors.New("mls: JoinExternal needs a GroupInfo and a signature key")
	}
	gc := &gi.GroupContext
	cs := gc.CipherSuite
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	if sigKey.Scheme() != p.sig {
		return nil, nil, fmt.Errorf("mls: signature key is for scheme %v, suite %v uses %v", sigKey.Scheme(), cs, p.sig)
	}
	if err := cfg.ValidateCredential(cs, &cred, sigKey.pub); err != nil {
		return nil, nil, fmt.Errorf("mls: own credential rejected: %w", err)
	}
	if tree == nil {
		if tree, err = ratchetTreeExtension(gi); err != nil {
			return nil, nil, err
		}
		if tree == nil {
			return nil, nil, errors.New("mls: GroupInfo has no ratchet_tree extension and no tree was given")
		}
	}
	rt, err := validateJoinTree(&cfg, cs, tree, gc)
	if err != nil {
		return nil, nil, err
	}
	signer := rt.leaf(gi.Signer)
	if signer == nil {
		return nil, nil, fmt.Errorf("mls: GroupInfo signer %d is a blank leaf", gi.Signer)
	}
	info, err := readExternalGroupInfo(cs, gi, signer.SignatureKey)
	if err != nil {
		return nil, nil, err
	}
	kemOutput, init, err := cs.externalInit(info.ExternalPub)
	if err != nil {
		return nil, nil, err
	}
	gcBytes, err := gc.Marshal()
	if err != nil {
		return nil, nil, err
	}
	// g is the group as it stands before the commit, seen from outside.
	g := &Group{
		cfg:        cfg,
		cs:         cs,
		sigKey:     sigKey,
		gc:         *gc,
		gcBytes:    gcBytes,
		tree:       rt,
		priv:       &treePrivateKeys{Leaf: noLeaf, keys: map[nodeIndex]*HPKEPrivateKey{}},
		interim:    cs.interimTranscriptHash(gc.ConfirmedTranscriptHash, gi.ConfirmationTag),
		resumption: map[uint64][]byte{},
	}
	sender := Sender{Type: SenderNewMemberCommit}
	var props []committedProposal
	var pors []ProposalOrRef
	add := func(p *Proposal) {
		props = append(props, committedProposal{proposal: p, sender: sender})
		pors = append(pors, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p})
	}
	add(&Proposal{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInitProposal{KEMOutput: kemOutput}})
	if opts.Resync != nil {
		old := rt.leaf(*opts.Resync)
		if old == nil {
			return nil, nil, fmt.Errorf("mls: resync of blank leaf %d", *opts.Resync)
		}
		if !sameIdentity(&old.Credential, &cred) {
			return nil, nil, errors.New("mls: resync leaf has another credential")
		}
		add(&Proposal{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: *opts.Resync}})
	}
	for _, id := range opts.PSKs {
		add(&Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKeyProposal{PSK: id}})
	}

	st := &stagedCommit{tree: rt.clone(), externalInit: init}
	if st.eff, err = g.applyProposals(st.tree, props, sender); err != nil {
		return nil, nil, err
	}
	leaf := &LeafNode{
		SignatureKey: sigKey.PublicKey(),
		Credential:   cred,
		Capabilities: capabilitiesFor(cs, cred.Type, st.eff.extensions),
		Source:       LeafNodeSourceCommit,
		Extensions:   Extensions{},
	}
	if st.committer, err = st.tree.addExternalJoiner(leaf); err != nil {
		return nil, nil, err
	}
	if st.path, err = st.tree.createUpdatePath(st.committer, leaf, sigKey, gc.GroupID, nil, g.provisionalContext(st.eff.extensions)); err != nil {
		return nil, nil, err
	}
	st.priv = st.path.Keys
	st.commitSecret = st.path.CommitSecret
	ac := &AuthenticatedContent{
		WireFormat: WireFormatPublicMessage,
		Content: FramedContent{
			GroupID:           gc.GroupID,
			Epoch:             gc.Epoch,
			Sender:            sender,
			AuthenticatedData: bytes.Clone(opts.AuthenticatedData),
			ContentType:       ContentTypeCommit,
			Commit:            &Commit{Proposals: pors, Path: st.path.Path},
		},
	}
	if ac.Auth.Signature, err = cs.signContent(sigKey, ac.WireFormat, &ac.Content, gcBytes); err != nil {
		return nil, nil, err
	}
	if err := g.finishEpoch(st, ac); err != nil {
		return nil, nil, err
	}
	ac.Auth.ConfirmationTag = st.confirmationTag
	msg := &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{Content: ac.Content, Auth: ac.Auth}}
	g.adopt(st)
	return g, msg, nil
}

// capabilitiesFor lists what a new leaf of ours supports: mls10, the
// suite, its credential type, and the extension and proposal types the
// group uses or requires.
func capabilitiesFor(cs CipherSuite, ct CredentialType, groupExts Extensions) Capabilities {
	caps := Capabilities{
		Versions:     []ProtocolVersion{ProtocolMLS10},
		CipherSuites: []CipherSuite{cs},
		Extensions:   []ExtensionType{},
		Proposals:    []ProposalType{},
		Credentials:  []CredentialType{ct},
	}
	for _, e := range groupExts {
		if !isDefaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			caps.Extensions = append(caps.Extensions, e.Type)
		}
	}
	if data, ok := groupExts.Find(ExtensionRequiredCapabilities); ok {
		if req, err := UnmarshalRequiredCapabilities(data); err == nil {
			for _, t := range req.ExtensionTypes {
				if !isDefaultExtension(t) && !slices.Contains(caps.Extensions, t) {
					caps.Extensions = append(caps.Extensions, t)
				}
			}
			for _, t := range req.ProposalTypes {
				if !isDefaultProposal(t) && !slices.Contains(caps.Proposals, t) {
					caps.Proposals = append(caps.Proposals, t)
				}
			}
			for _, t := range req.CredentialTypes {
				if !slices.Contains(caps.Credentials, t) {
					caps.Credentials = append(caps.Credentials, t)
				}
			}
		}
	}
	return caps
}

// addExternalJoiner puts the leaf of an external commit's joiner in the
// leftmost blank leaf (RFC 9420, Section 12.4.2), without its encryption key,
// so that the UpdatePath's leaf, which then replaces it, counts as a new key.
func (t *ratchetTree) addExternalJoiner(leaf *LeafNode) (LeafIndex, error) {
	provisional, err := cloneLeafNode(leaf)
	if err != nil {
		return 0, err
	}
	provisional.EncryptionKey = nil
	return t.addLeaf(provisional)
}
