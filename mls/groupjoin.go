package mls

import (
	"bytes"
	"errors"
	"fmt"
)

// This file is joining a group by Welcome, RFC 9420, Section 12.4.3.1.

// welcomeJoin is the state of a join by Welcome, one step per method.
type welcomeJoin struct {
	cfg     *Config
	cs      CipherSuite
	kp      *KeyPackage
	secrets *KeyPackageSecrets
	sigKey  *SignaturePrivateKey

	opened  *openedWelcome
	tree    *ratchetTree
	myLeaf  LeafIndex
	priv    *treePrivateKeys
	gcBytes []byte
	epoch   *EpochSecrets
}

// JoinFromWelcome joins a group with a Welcome made for kp, whose private
// keys are secrets and sigKey. tree is the group's ratchet tree when it is
// distributed out of band; nil means the Welcome's GroupInfo must carry it
// in a ratchet_tree extension. It returns ErrWelcomeNotForUs when the
// Welcome has no entry for kp. See RFC 9420, Section 12.4.3.1.
func JoinFromWelcome(cfg Config, welcome *Welcome, kp *KeyPackage, secrets *KeyPackageSecrets, sigKey *SignaturePrivateKey, tree RatchetTree) (*Group, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if welcome == nil || kp == nil {
		return nil, errors.New("mls: JoinFromWelcome needs a welcome and a key package")
	}
	if err := checkOwnKeys(kp.CipherSuite, kp, secrets, sigKey); err != nil {
		return nil, err
	}
	if secrets.InitKey == nil {
		return nil, errors.New("mls: key package secrets have no init key")
	}
	j := &welcomeJoin{cfg: &cfg, cs: kp.CipherSuite, kp: kp, secrets: secrets, sigKey: sigKey}
	if err := j.open(welcome); err != nil {
		return nil, err
	}
	if err := j.readTree(tree); err != nil {
		return nil, err
	}
	if err := j.verifyGroupInfo(); err != nil {
		return nil, err
	}
	if err := j.findOwnLeaf(); err != nil {
		return nil, err
	}
	if err := j.keySchedule(); err != nil {
		return nil, err
	}
	if err := j.checkResumption(); err != nil {
		return nil, err
	}
	return j.group(), nil
}

// open decrypts the Welcome's GroupSecrets and GroupInfo, looking up its
// PSKs.
func (j *welcomeJoin) open(w *Welcome) error {
	var err error
	j.opened, err = openWelcome(j.cs, w, j.kp, j.secrets.InitKey, j.cfg.ExternalPSKs, j.cfg.ResumptionPSKs)
	return err
}

// readTree takes the ratchet tree from out of band or from the GroupInfo's
// ratchet_tree extension, validates it and checks its hash against the
// GroupContext's. See RFC 9420, Sections 12.4.3.1 and 12.4.3.3.
func (j *welcomeJoin) readTree(oob RatchetTree) error {
	gi := j.opened.GroupInfo
	wire, err := ratchetTreeExtension(gi)
	if err != nil {
		return err
	}
	if oob != nil {
		wire = oob
	}
	if wire == nil {
		return errors.New("mls: welcome has no ratchet_tree extension and no tree was given")
	}
	j.tree, err = validateJoinTree(j.cfg, j.cs, wire, &gi.GroupContext)
	return err
}

// validateJoinTree builds and validates the ratchet tree of a group being
// joined, with the application's credential checks, and checks its hash
// against the GroupContext's. See RFC 9420, Sections 12.4.3.1 and
// 12.4.3.2.
func validateJoinTree(cfg *Config, cs CipherSuite, wire RatchetTree, gc *GroupContext) (*ratchetTree, error) {
	tree, err := newRatchetTree(cs, wire)
	if err != nil {
		return nil, err
	}
	check := func(i LeafIndex, l *LeafNode) error {
		if err := cfg.ValidateCredential(cs, &l.Credential, l.SignatureKey); err != nil {
			return fmt.Errorf("mls: leaf %d: credential rejected: %w", i, err)
		}
		if err := checkSupportsGroup(&l.Capabilities, gc.Extensions); err != nil {
			return fmt.Errorf("mls: leaf %d: %w", i, err)
		}
		return nil
	}
	if err := tree.validate(gc.GroupID, check); err != nil {
		return nil, err
	}
	treeHash, err := tree.rootHash()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(treeHash, gc.TreeHash) {
		return nil, errors.New("mls: ratchet tree's hash differs from the GroupInfo's tree_hash")
	}
	if err := validateGroupExtensions(cs, gc.Extensions, cfg.ValidateCredential); err != nil {
		return nil, err
	}
	return tree, nil
}

// verifyGroupInfo checks the GroupInfo's signature with the key of the
// signer's leaf.
func (j *welcomeJoin) verifyGroupInfo() error {
	gi := j.opened.GroupInfo
	signer := j.tree.leaf(gi.Signer)
	if signer == nil {
		return fmt.Errorf("mls: GroupInfo signer %d is a blank leaf", gi.Signer)
	}
	return gi.verifySignature(j.cs, signer.SignatureKey)
}

// findOwnLeaf finds the leaf holding our KeyPackage's leaf node and sets up
// our private keys, with the path secret if the Welcome has one.
func (j *welcomeJoin) findOwnLeaf() error {
	want, err := j.kp.LeafNode.Marshal()
	if err != nil {
		return err
	}
	found := false
	err = j.tree.leafNodes(func(i LeafIndex, l *LeafNode) error {
		if found {
			return nil
		}
		got, err := l.Marshal()
		if err != nil {
			return err
		}
		if bytes.Equal(got, want) {
			j.myLeaf, found = i, true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return errors.New("mls: our key package's leaf node is not in the ratchet tree")
	}
	j.priv = newTreePrivateKeys(j.myLeaf, j.secrets.EncryptionKey)
	if ps := j.opened.Secrets.PathSecret; ps != nil {
		signer := j.opened.GroupInfo.Signer
		if signer == j.myLeaf {
			return errors.New("mls: GroupInfo signer is our own leaf")
		}
		x := commonAncestor(j.myLeaf.node(), signer.node())
		if err := j.priv.addPathSecret(j.tree, x, ps.PathSecret); err != nil {
			return err
		}
	}
	return nil
}

// keySchedule derives the epoch's secrets and verifies the confirmation
// tag.
func (j *welcomeJoin) keySchedule() error {
	gi := j.opened.GroupInfo
	var err error
	if j.gcBytes, err = gi.GroupContext.Marshal(); err != nil {
		return err
	}
	if j.epoch, err = j.opened.intermediate.epoch(j.gcBytes); err != nil {
		return err
	}
	return verifyConfirmationTag(j.cs, j.epoch, gi)
}

// checkResumption applies the checks of a Welcome to a reinitialized or
// branched group that need nothing but the Welcome: at most one reinit or
// branch PSK, and then epoch 1. Whether the members and parameters match
// the old group is for the application, whose Config.ResumptionPSKs
// lookup is given the PSK's ID. See RFC 9420, Sections 11.2, 11.3 and
// 12.4.3.1.
func (j *welcomeJoin) checkResumption() error {
	n := countResumptionPSKs(j.opened.Secrets.PSKs)
	if n > 1 {
		return fmt.Errorf("mls: welcome has %d reinit or branch PSKs, at most one is allowed", n)
	}
	if n == 1 && j.opened.GroupInfo.GroupContext.Epoch != 1 {
		return fmt.Errorf("mls: welcome with a reinit or branch PSK is for epoch %d, want 1", j.opened.GroupInfo.GroupContext.Epoch)
	}
	return nil
}

func (j *welcomeJoin) group() *Group {
	gi := j.opened.GroupInfo
	g := &Group{
		cfg:             *j.cfg,
		cs:              j.cs,
		sigKey:          j.sigKey,
		gc:              gi.GroupContext,
		gcBytes:         j.gcBytes,
		tree:            j.tree,
		priv:            j.priv,
		secrets:         j.epoch,
		confirmationTag: bytes.Clone(gi.ConfirmationTag),
		interim:         j.cs.interimTranscriptHash(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag),
		resumption:      map[uint64][]byte{},
	}
	g.startEpoch()
	return g
}
