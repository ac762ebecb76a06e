package mls

import (
	"bytes"
	"errors"
	"time"
)

// This file moves a group to its next epoch: a commit's changes are staged
// on copies of the tree and private keys (stagedCommit), the key schedule
// of the new epoch is run (RFC 9420, Section 8), and only once every check
// has passed does adopt make the staged state current.

// stagedCommit is the next epoch as a commit would make it.
type stagedCommit struct {
	tree    *ratchetTree
	priv    *treePrivateKeys
	eff     *proposalEffects
	gc      GroupContext
	gcBytes []byte
	secrets *EpochSecrets
	// joiner and pskSecret are kept for the Welcome of a commit we make.
	joiner    *joinerSecret
	pskSecret []byte
	// commitSecret is nil for a commit without a path.
	commitSecret []byte
	// path is set for a commit with a path that we make.
	path *createdPath
	// externalInit is the init_secret of an external commit we make.
	externalInit *initSecret
	// committer is the committer's leaf in the new tree.
	committer       LeafIndex
	confirmationTag []byte
	interim         []byte
	removedSelf     bool
}

// provisionalContext returns a function giving the encoded provisional
// GroupContext of the next epoch for a tree hash: the old confirmed
// transcript hash and the new extensions. See RFC 9420, Section 12.4.2.
func (g *Group) provisionalContext(exts Extensions) func(treeHash []byte) ([]byte, error) {
	return func(treeHash []byte) ([]byte, error) {
		gc := GroupContext{
			Version:                 g.gc.Version,
			CipherSuite:             g.cs,
			GroupID:                 g.gc.GroupID,
			Epoch:                   g.gc.Epoch + 1,
			TreeHash:                treeHash,
			ConfirmedTranscriptHash: g.gc.ConfirmedTranscriptHash,
			Extensions:              exts,
		}
		return gc.Marshal()
	}
}

// stageCommit applies a received commit's proposals and path to copies of
// the state and derives the new epoch. See RFC 9420, Section 12.4.2.
func (g *Group) stageCommit(ac *AuthenticatedContent, props []committedProposal) (*stagedCommit, error) {
	commit := ac.Content.Commit
	sender := ac.Content.Sender
	// Hash the current tree before copying it, so that the copy starts
	// with every subtree hash cached: a commit then rehashes only the
	// paths it changes, not the whole tree.
	if _, err := g.tree.rootHash(); err != nil {
		return nil, err
	}
	st := &stagedCommit{tree: g.tree.clone(), priv: g.priv.clone()}
	eff, err := g.applyProposals(st.tree, props, sender)
	if err != nil {
		return nil, err
	}
	st.eff = eff
	if eff.pathRequired && commit.Path == nil {
		return nil, errors.New("mls: commit without a path where one is required")
	}
	for _, r := range eff.removed {
		if r.Leaf == g.priv.Leaf {
			st.removedSelf = true
		}
	}
	if st.removedSelf {
		return st, nil
	}
	if eff.ownUpdate != nil {
		key := g.pendingUpdateKey(eff.ownUpdate.EncryptionKey)
		if key == nil {
			return nil, errors.New("mls: commit applies an Update of our leaf whose private key we do not hold")
		}
		st.priv.keys[g.priv.Leaf.node()] = key
	}
	st.committer = sender.Leaf
	if commit.Path != nil {
		path := commit.Path
		if sender.Type == SenderNewMemberCommit {
			var err error
			if st.committer, err = st.tree.addExternalJoiner(&path.LeafNode); err != nil {
				return nil, err
			}
			if len(eff.removed) == 1 && !sameIdentity(&eff.removed[0].Credential, &path.LeafNode.Credential) {
				return nil, errors.New("mls: external commit removes a leaf of another identity")
			}
		}
		if err := g.checkLeafNode(&path.LeafNode, LeafNodeSourceCommit, eff.extensions, zeroTime); err != nil {
			return nil, err
		}
		if err := checkFreshPathKeys(st.tree, path); err != nil {
			return nil, err
		}
		rp, err := st.tree.processUpdatePath(st.committer, path, g.gc.GroupID, eff.added, st.priv, g.provisionalContext(eff.extensions))
		if err != nil {
			return nil, err
		}
		st.priv = rp.Keys
		st.commitSecret = rp.CommitSecret
		st.eff.updated = append(st.eff.updated, st.committer)
	} else if sender.Type == SenderNewMemberCommit {
		return nil, errors.New("mls: external commit without a path")
	}
	st.priv.prune(st.tree)
	if err := g.finishEpoch(st, ac); err != nil {
		return nil, err
	}
	return st, nil
}

// sameIdentity reports whether two credentials present the same identity,
// the check RFC 9420, Section 12.2 asks of an external commit's Remove.
func sameIdentity(a, b *Credential) bool {
	ea, err1 := a.Marshal()
	eb, err2 := b.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// finishEpoch derives the next epoch of a staged commit whose content ac is
// signed: transcript hashes, GroupContext, key schedule and confirmation
// tag. See RFC 9420, Sections 8 and 8.2.
func (g *Group) finishEpoch(st *stagedCommit, ac *AuthenticatedContent) error {
	cs := g.cs
	confirmed, err := cs.confirmedTranscriptHash(g.interim, ac)
	if err != nil {
		return err
	}
	treeHash, err := st.tree.rootHash()
	if err != nil {
		return err
	}
	st.gc = GroupContext{
		Version:                 g.gc.Version,
		CipherSuite:             cs,
		GroupID:                 g.gc.GroupID,
		Epoch:                   g.gc.Epoch + 1,
		TreeHash:                treeHash,
		ConfirmedTranscriptHash: confirmed,
		Extensions:              cloneExtensions(st.eff.extensions),
	}
	if st.gcBytes, err = st.gc.Marshal(); err != nil {
		return err
	}
	var init *initSecret
	switch {
	case st.externalInit != nil:
		init = st.externalInit
	case st.eff.externalInit != nil:
		priv, err := g.secrets.externalKey()
		if err != nil {
			return err
		}
		if init, err = cs.externalInitSecret(priv, st.eff.externalInit.KEMOutput); err != nil {
			return err
		}
	default:
		init = g.secrets.nextInit()
	}
	if st.joiner, err = init.joiner(st.commitSecret, st.gcBytes); err != nil {
		return err
	}
	if st.pskSecret, err = resolvePSKSecret(cs, st.eff.psks, g.cfg.ExternalPSKs, g.resumptionLookup); err != nil {
		return err
	}
	if st.secrets, err = st.joiner.withPSK(st.pskSecret).epoch(st.gcBytes); err != nil {
		return err
	}
	st.confirmationTag = cs.confirmationTag(st.secrets.confirmationKey(), confirmed)
	st.interim = cs.interimTranscriptHash(confirmed, st.confirmationTag)
	return nil
}

// adopt makes a staged commit the group's current state and reports the
// change.
func (g *Group) adopt(st *stagedCommit) *CommitResult {
	res := &CommitResult{Removed: st.eff.removed, ReInit: st.eff.reinit, RemovedSelf: st.removedSelf}
	for _, l := range st.eff.added {
		leaf := st.tree.leaf(l)
		res.Added = append(res.Added, Member{Leaf: l, Credential: cloneCredential(leaf.Credential), SignatureKey: bytes.Clone(leaf.SignatureKey)})
	}
	res.Updated = st.eff.updated
	if st.removedSelf {
		g.removed = true
		g.proposals = nil
		g.pending = nil
		return res
	}
	g.retireEpoch()
	g.tree = st.tree
	g.priv = st.priv
	g.gc = st.gc
	g.gcBytes = st.gcBytes
	g.secrets = st.secrets
	g.interim = st.interim
	g.confirmationTag = st.confirmationTag
	g.pendingUpdates = nil
	g.reinit = st.eff.reinit != nil
	g.startEpoch()
	return res
}

// pendingUpdateKey returns the private key of an Update we proposed in this
// epoch with the given public key.
func (g *Group) pendingUpdateKey(pub []byte) *HPKEPrivateKey {
	for _, k := range g.pendingUpdates {
		if bytes.Equal(k.pub, pub) {
			return k
		}
	}
	return nil
}

var zeroTime time.Time

// checkFreshPathKeys refuses an UpdatePath whose public keys already appear
// in the tree, or twice in the path. See RFC 9420, Section 12.4.2.
func checkFreshPathKeys(t *ratchetTree, path *UpdatePath) error {
	seen := make(map[string]bool, len(t.nodes))
	for x, n := range t.nodes {
		if n != nil {
			seen[string(t.encryptionKey(nodeIndex(x)))] = true
		}
	}
	keys := [][]byte{path.LeafNode.EncryptionKey}
	for i := range path.Nodes {
		keys = append(keys, path.Nodes[i].EncryptionKey)
	}
	for _, k := range keys {
		if seen[string(k)] {
			return errors.New("mls: UpdatePath reuses a public key of the tree")
		}
		seen[string(k)] = true
	}
	return nil
}
