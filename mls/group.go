package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file is the group state of RFC 9420: one member's view of one epoch
// of a group (Section 8.1's GroupContext, the ratchet tree, the member's
// private keys and the epoch's secrets), and the operations that do not
// change the epoch.

// DefaultMaxPastEpochs is how many past epochs a Group keeps the keys of,
// to decrypt late application messages, when Config.MaxPastEpochs is zero.
const DefaultMaxPastEpochs = 3

// maxResumptionPSKs is how many epochs' resumption_psk a group keeps for
// PreSharedKey proposals of resumption type (RFC 9420, Section 8.6).
const maxResumptionPSKs = 32

// Config is what a Group needs from the application.
type Config struct {
	// Clock returns the current time, for KeyPackage lifetimes; nil means
	// time.Now.
	Clock func() time.Time
	// ValidateCredential authenticates every credential the group is about
	// to trust. It is required.
	ValidateCredential CredentialValidator
	// ExternalPSKs looks up external pre-shared keys; nil means the
	// application has none, and commits or Welcomes that use one fail.
	ExternalPSKs PSKLookup
	// ResumptionPSKs looks up resumption PSKs of other groups (a
	// reinitialized or branched group, RFC 9420, Sections 11.2 and 11.3)
	// when joining. A group's own past epochs are looked up internally.
	ResumptionPSKs PSKLookup
	// PaddingBlock pads PrivateMessage plaintexts to a multiple of this
	// many bytes; 0 or 1 means no padding.
	PaddingBlock int
	// MaxPastEpochs is how many past epochs' keys are kept to decrypt late
	// application messages; 0 means DefaultMaxPastEpochs, negative means
	// none.
	MaxPastEpochs int
	// UsePrivateHandshake sends proposals and commits as PrivateMessage
	// rather than PublicMessage.
	UsePrivateHandshake bool
	// MaxForwardDistance bounds how many generations ahead of a sender's
	// ratchet a PrivateMessage may be; 0 means 1000.
	MaxForwardDistance uint32
	// MaxRetainedKeys bounds the keys of skipped generations each ratchet
	// keeps for messages that arrive out of order; 0 means 256, negative
	// means none.
	MaxRetainedKeys int
}

func (c *Config) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func (c *Config) maxPastEpochs() int {
	switch {
	case c.MaxPastEpochs == 0:
		return DefaultMaxPastEpochs
	case c.MaxPastEpochs < 0:
		return 0
	}
	return c.MaxPastEpochs
}

func (c *Config) check() error {
	if c == nil || c.ValidateCredential == nil {
		return errors.New("mls: Config.ValidateCredential is required")
	}
	return nil
}

// ErrRemoved is returned by operations on a group from which this member
// has been removed by a commit.
var ErrRemoved = errors.New("mls: this member has been removed from the group")

// Group is one member's state of an MLS group. It is not safe for
// concurrent use.
type Group struct {
	cfg    Config
	cs     CipherSuite
	sigKey *SignaturePrivateKey

	gc      GroupContext
	gcBytes []byte
	tree    *ratchetTree
	priv    *treePrivateKeys
	secrets *EpochSecrets
	prot    *epochProtection
	// interim is interim_transcript_hash of the current epoch, and
	// confirmationTag the confirmation tag of the commit that began it.
	interim         []byte
	confirmationTag []byte

	// proposals are the proposals received (or sent) in this epoch, in
	// order, by ProposalRef.
	proposals []*cachedProposal
	// pendingUpdates are the leaf private keys of our Update proposals of
	// this epoch.
	pendingUpdates []*HPKEPrivateKey
	// pending is our own commit, waiting for the relay's acceptance.
	pending *pendingCommit
	// past holds the protection state of recent past epochs, newest last.
	past []*pastEpoch
	// resumption maps recent epochs to their resumption_psk.
	resumption map[uint64][]byte
	removed    bool
	// reinit is set once a commit with a ReInit proposal is applied: the
	// group must not be used to send any more (RFC 9420, Section 11.2).
	reinit bool
}

// ErrReInit is returned by operations that send in a group that a ReInit
// commit has closed; the members wait for a Welcome to the new group.
var ErrReInit = errors.New("mls: the group was reinitialized; wait for a Welcome to the new group")

// usable returns ErrRemoved or ErrReInit when the group can no longer be
// used to send.
func (g *Group) usable() error {
	switch {
	case g.removed:
		return ErrRemoved
	case g.reinit:
		return ErrReInit
	}
	return nil
}

// pastEpoch is what is kept of a past epoch to read late application
// messages: its protection keys and the signature keys of its members.
type pastEpoch struct {
	prot    *epochProtection
	sigKeys map[LeafIndex][]byte
}

// cachedProposal is a proposal received by reference in the current epoch.
type cachedProposal struct {
	ref      []byte
	proposal *Proposal
	sender   Sender
	// declined is set by DeclineProposal: this member does not commit
	// it, but resolves it in another member's commit.
	declined bool
}

// Member is one member of a group, as Members lists it.
type Member struct {
	Leaf         LeafIndex
	Credential   Credential
	SignatureKey []byte
}

// Epoch returns the group's current epoch.
func (g *Group) Epoch() uint64 { return g.gc.Epoch }

// GroupID returns the group's ID.
func (g *Group) GroupID() []byte { return bytes.Clone(g.gc.GroupID) }

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.cs }

// OwnLeaf returns this member's leaf index.
func (g *Group) OwnLeaf() LeafIndex { return g.priv.Leaf }

// Extensions returns a copy of the GroupContext extensions.
func (g *Group) Extensions() Extensions { return cloneExtensions(g.gc.Extensions) }

// EpochAuthenticator returns the epoch_authenticator of the current epoch.
// See RFC 9420, Section 8.7.
func (g *Group) EpochAuthenticator() []byte { return g.secrets.EpochAuthenticator() }

// Export is MLS-Exporter(label, context, length) of the current epoch.
// See RFC 9420, Section 8.5.
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.secrets.Export(label, context, length)
}

// Members lists the group's members in leaf order.
func (g *Group) Members() []Member {
	var out []Member
	_ = g.tree.leafNodes(func(i LeafIndex, l *LeafNode) error {
		out = append(out, Member{Leaf: i, Credential: cloneCredential(l.Credential), SignatureKey: bytes.Clone(l.SignatureKey)})
		return nil
	})
	return out
}

// RatchetTree returns the ratchet tree in the form of the ratchet_tree
// extension, for distributing out of band. See RFC 9420, Section 12.4.3.3.
func (g *Group) RatchetTree() (RatchetTree, error) { return g.tree.wire() }

// TreeHash returns the tree hash of the current ratchet tree, as the
// GroupContext carries it.
func (g *Group) TreeHash() []byte { return bytes.Clone(g.gc.TreeHash) }

func cloneCredential(c Credential) Credential {
	out := Credential{Type: c.Type, Identity: bytes.Clone(c.Identity)}
	for _, cert := range c.Certificates {
		out.Certificates = append(out.Certificates, bytes.Clone(cert))
	}
	return out
}

func cloneExtensions(e Extensions) Extensions {
	if e == nil {
		return Extensions{}
	}
	out := make(Extensions, len(e))
	for i, x := range e {
		out[i] = Extension{Type: x.Type, Data: bytes.Clone(x.Data)}
	}
	return out
}

// NewGroup creates a group of one member at epoch 0 with the given
// GroupContext extensions, kp's leaf node becoming leaf 0 and secrets its
// private keys. See RFC 9420, Section 11.
func NewGroup(cfg Config, groupID []byte, kp *KeyPackage, secrets *KeyPackageSecrets, sigKey *SignaturePrivateKey, extensions Extensions) (*Group, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cs := kp.CipherSuite
	if err := extensions.validateUnique(); err != nil {
		return nil, err
	}
	if err := validateKeyPackage(cs, kp, extensions, cfg.ValidateCredential, cfg.now()); err != nil {
		return nil, err
	}
	if err := checkOwnKeys(cs, kp, secrets, sigKey); err != nil {
		return nil, err
	}
	if err := validateGroupExtensions(cs, extensions, cfg.ValidateCredential); err != nil {
		return nil, err
	}
	tree, err := newRatchetTree(cs, RatchetTree{{Type: NodeTypeLeaf, Leaf: &kp.LeafNode}})
	if err != nil {
		return nil, err
	}
	treeHash, err := tree.rootHash()
	if err != nil {
		return nil, err
	}
	gc := GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             cs,
		GroupID:                 bytes.Clone(groupID),
		Epoch:                   0,
		TreeHash:                treeHash,
		ConfirmedTranscriptHash: []byte{},
		Extensions:              cloneExtensions(extensions),
	}
	gcBytes, err := gc.Marshal()
	if err != nil {
		return nil, err
	}
	init, err := newRandomInitSecret(cs)
	if err != nil {
		return nil, err
	}
	joiner, err := init.joiner(nil, gcBytes)
	if err != nil {
		return nil, err
	}
	es, err := joiner.withPSK(nil).epoch(gcBytes)
	if err != nil {
		return nil, err
	}
	g := &Group{
		cfg:        cfg,
		cs:         cs,
		sigKey:     sigKey,
		gc:         gc,
		gcBytes:    gcBytes,
		tree:       tree,
		priv:       newTreePrivateKeys(0, secrets.EncryptionKey),
		secrets:    es,
		resumption: map[uint64][]byte{},
	}
	// Section 11: the interim transcript hash of epoch 0 is computed from
	// the confirmation tag over the empty confirmed transcript hash.
	g.confirmationTag = cs.confirmationTag(es.confirmationKey(), gc.ConfirmedTranscriptHash)
	g.interim = cs.interimTranscriptHash(gc.ConfirmedTranscriptHash, g.confirmationTag)
	g.startEpoch()
	return g, nil
}

// checkOwnKeys checks that secrets and sigKey are the private keys of kp.
func checkOwnKeys(cs CipherSuite, kp *KeyPackage, secrets *KeyPackageSecrets, sigKey *SignaturePrivateKey) error {
	if secrets == nil || secrets.EncryptionKey == nil || sigKey == nil {
		return errors.New("mls: key package secrets and signature key are required")
	}
	if secrets.CipherSuite != cs {
		return fmt.Errorf("mls: key package secrets are for suite %v, the key package for %v", secrets.CipherSuite, cs)
	}
	if !bytes.Equal(secrets.EncryptionKey.pub, kp.LeafNode.EncryptionKey) {
		return errors.New("mls: encryption private key does not match the key package's leaf node")
	}
	if !bytes.Equal(sigKey.pub, kp.LeafNode.SignatureKey) {
		return errors.New("mls: signature private key does not match the key package's leaf node")
	}
	return nil
}

// validateGroupExtensions checks GroupContext extensions that this package
// interprets: external_senders (each credential validated) and
// required_capabilities (well formed). See RFC 9420, Sections 11.1 and
// 12.1.8.1.
func validateGroupExtensions(cs CipherSuite, exts Extensions, validate CredentialValidator) error {
	if data, ok := exts.Find(ExtensionExternalSenders); ok {
		senders, err := UnmarshalExternalSenders(data)
		if err != nil {
			return err
		}
		if err := validateExternalSenders(cs, senders, validate); err != nil {
			return err
		}
	}
	if data, ok := exts.Find(ExtensionRequiredCapabilities); ok {
		if _, err := UnmarshalRequiredCapabilities(data); err != nil {
			return err
		}
	}
	return nil
}

// startEpoch sets up the protection state of the epoch in g.secrets and
// g.gcBytes, and forgets the proposals of the previous epoch.
func (g *Group) startEpoch() {
	g.prot = &epochProtection{
		suite:            g.cs,
		groupID:          g.gc.GroupID,
		epoch:            g.gc.Epoch,
		groupContext:     g.gcBytes,
		senderDataSecret: g.secrets.senderDataSecret(),
		membershipKey:    g.secrets.membershipKey(),
		tree:             g.secrets.secretTree(g.tree.leafCount()),
	}
	if g.cfg.MaxForwardDistance > 0 {
		g.prot.tree.maxForwardDistance = g.cfg.MaxForwardDistance
	}
	switch {
	case g.cfg.MaxRetainedKeys > 0:
		g.prot.tree.maxRetainedKeys = g.cfg.MaxRetainedKeys
	case g.cfg.MaxRetainedKeys < 0:
		g.prot.tree.maxRetainedKeys = 0
	}
	g.proposals = nil
	g.pending = nil
	g.resumption[g.gc.Epoch] = bytes.Clone(g.secrets.resumptionPSK())
	for e := range g.resumption {
		if e+maxResumptionPSKs <= g.gc.Epoch {
			delete(g.resumption, e)
		}
	}
}

// retireEpoch moves the current epoch's protection state to the past-epoch
// window, dropping the oldest beyond Config.MaxPastEpochs.
func (g *Group) retireEpoch() {
	max := g.cfg.maxPastEpochs()
	if max == 0 || g.prot == nil {
		g.past = nil
		return
	}
	keys := map[LeafIndex][]byte{}
	_ = g.tree.leafNodes(func(i LeafIndex, l *LeafNode) error {
		keys[i] = l.SignatureKey
		return nil
	})
	g.past = append(g.past, &pastEpoch{prot: g.prot, sigKeys: keys})
	if len(g.past) > max {
		g.past = append([]*pastEpoch(nil), g.past[len(g.past)-max:]...)
	}
}

// resumptionLookup returns the resumption_psk of a recent epoch of this
// group, for PreSharedKey proposals. See RFC 9420, Section 8.6.
func (g *Group) resumptionLookup(id *PreSharedKeyID) ([]byte, error) {
	if bytes.Equal(id.GroupID, g.gc.GroupID) {
		if psk, ok := g.resumption[id.Epoch]; ok {
			return psk, nil
		}
		return nil, fmt.Errorf("mls: no resumption PSK for epoch %d of this group", id.Epoch)
	}
	if g.cfg.ResumptionPSKs != nil {
		return g.cfg.ResumptionPSKs(id)
	}
	return nil, errors.New("mls: resumption PSK of another group and no Config.ResumptionPSKs")
}

// ResumptionPSK returns the resumption_psk of a recent epoch of this group
// (the current one or one of the last 32), for the application to give to
// a reinitialized or branched group through Config.ResumptionPSKs. See
// RFC 9420, Section 8.6.
func (g *Group) ResumptionPSK(epoch uint64) ([]byte, error) {
	psk, ok := g.resumption[epoch]
	if !ok {
		return nil, fmt.Errorf("mls: no resumption PSK for epoch %d of this group", epoch)
	}
	return bytes.Clone(psk), nil
}

// memberKey returns the signature key of leaf l in the current tree.
func (g *Group) memberKey(l LeafIndex) ([]byte, error) {
	leaf := g.tree.leaf(l)
	if leaf == nil {
		return nil, fmt.Errorf("%w: leaf %d is blank", ErrUnknownSender, l)
	}
	return leaf.SignatureKey, nil
}

// ErrProposalsPending is returned by Encrypt when proposals of the epoch
// have not been committed yet: commit them (Commit), then send. See RFC
// 9420, Section 12.4.
var ErrProposalsPending = errors.New("mls: proposals are pending; commit them before sending application data")

// Encrypt protects application data as a PrivateMessage of the current
// epoch. See RFC 9420, Section 6.3.
func (g *Group) Encrypt(data, authenticatedData []byte) (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if g.pending != nil {
		// The epoch is about to end; data sent now would be under keys
		// the receivers are about to retire.
		return nil, errors.New("mls: a commit is pending; merge or discard it before sending application data")
	}
	if slices.ContainsFunc(g.proposals, func(cp *cachedProposal) bool { return !cp.declined }) {
		// Section 12.4: a member that has observed valid proposals in
		// the epoch must commit before sending application data, so
		// that, for example, members whose removal was proposed are
		// removed. A declined proposal is not valid under the
		// application's policy.
		return nil, ErrProposalsPending
	}
	ac := &AuthenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID:           g.gc.GroupID,
			Epoch:             g.gc.Epoch,
			Sender:            Sender{Type: SenderMember, Leaf: g.priv.Leaf},
			AuthenticatedData: bytes.Clone(authenticatedData),
			ContentType:       ContentTypeApplication,
			ApplicationData:   bytes.Clone(data),
		},
	}
	return g.protect(ac)
}

// protect signs content from this member and wraps it as a PublicMessage
// or PrivateMessage, as ac.WireFormat says.
func (g *Group) protect(ac *AuthenticatedContent) (*MLSMessage, error) {
	sig, err := g.cs.signContent(g.sigKey, ac.WireFormat, &ac.Content, g.gcBytes)
	if err != nil {
		return nil, err
	}
	ac.Auth.Signature = sig
	return g.wrap(ac)
}

// wrap wraps signed content in its wire format.
func (g *Group) wrap(ac *AuthenticatedContent) (*MLSMessage, error) {
	msg := &MLSMessage{Version: ProtocolMLS10, WireFormat: ac.WireFormat}
	var err error
	switch ac.WireFormat {
	case WireFormatPublicMessage:
		msg.PublicMessage, err = g.prot.protectPublic(ac)
	case WireFormatPrivateMessage:
		msg.PrivateMessage, err = g.prot.protectPrivate(ac, g.cfg.PaddingBlock)
	default:
		err = fmt.Errorf("mls: cannot send content in wire format %d", ac.WireFormat)
	}
	if err != nil {
		return nil, err
	}
	return msg, nil
}

func (g *Group) handshakeWireFormat() WireFormat {
	if g.cfg.UsePrivateHandshake {
		return WireFormatPrivateMessage
	}
	return WireFormatPublicMessage
}
