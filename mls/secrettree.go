package mls

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// This file is the secret tree of RFC 9420, Section 9: from an epoch's
// encryption_secret, one handshake and one application hash ratchet per
// leaf, each yielding a single-use key and nonce per generation.
//
// The tree derives lazily and deletes as it goes (Section 9.2): a node's
// secret is derived only when a leaf below it is first needed, both children
// are derived together and the parent's secret is then deleted, a leaf's
// secret is deleted once its two ratchets are started, a ratchet secret is
// deleted once the ratchet moves past it, and a key is deleted once it is
// consumed. Deleted secrets are overwritten with zeros first.

// ratchetType selects one of a leaf's two hash ratchets.
type ratchetType int

const (
	ratchetHandshake ratchetType = iota
	ratchetApplication
)

func (rt ratchetType) String() string {
	if rt == ratchetHandshake {
		return "handshake"
	}
	return "application"
}

// ratchetKey is the key material for one message: ratchet_key_[N]_[j] and
// ratchet_nonce_[N]_[j] for j = generation. See RFC 9420, Section 9.1.
type ratchetKey struct {
	generation uint32
	key, nonce []byte
}

// The default bounds of the out-of-order window of each ratchet.
const (
	// defaultMaxForwardDistance is how many generations past the next
	// expected one a received message may be: deriving further would let
	// one message cost a receiver unbounded work.
	defaultMaxForwardDistance = 1000
	// defaultMaxRetainedKeys is how many keys of skipped generations a
	// ratchet keeps for messages that arrive late; the oldest go first.
	defaultMaxRetainedKeys = 256
)

// The reasons a ratchet refuses a generation, wrapped in a GenerationError
// by the decryption of a PrivateMessage. Receivers branch on them:
// ErrGenerationUsed marks a replay or a message too late to decrypt,
// ErrGenerationTooFar a message too far ahead of its sender's ratchet.
var (
	ErrGenerationUsed   = errors.New("mls: ratchet generation was already used or deleted")
	ErrGenerationTooFar = errors.New("mls: ratchet generation is too far ahead")
)

// GenerationError reports a generation of a sender's ratchet for which the
// secret tree cannot give a key. Err is ErrGenerationUsed or
// ErrGenerationTooFar.
type GenerationError struct {
	Leaf       LeafIndex
	Handshake  bool // the handshake ratchet, rather than the application one
	Generation uint32
	Err        error
}

func (e *GenerationError) Error() string {
	rt := ratchetApplication
	if e.Handshake {
		rt = ratchetHandshake
	}
	reason := "cannot be used"
	switch e.Err {
	case ErrGenerationUsed:
		reason = "was already used or deleted"
	case ErrGenerationTooFar:
		reason = "is too far ahead"
	}
	return fmt.Sprintf("mls: generation %d of leaf %d's %v ratchet %s", e.Generation, e.Leaf, rt, reason)
}

func (e *GenerationError) Unwrap() error { return e.Err }

// secretTree is the secret tree of one epoch. It is not safe for concurrent
// use.
//
// On the receiving side, a message's key must not be consumed before the
// message is known to be authentic: otherwise a forged message naming the
// generation of a legitimate one would delete the legitimate message's key.
// So a receiver calls peek, which derives the key without changing any
// ratchet, tries to decrypt, and only on success calls consume, which
// advances the ratchet and deletes the key. get does both at once, for
// callers that have no such check to make.
type secretTree struct {
	cs        CipherSuite
	leafCount uint32

	// maxForwardDistance bounds how far past the next expected generation
	// get, peek and consume reach; defaultMaxForwardDistance unless set.
	maxForwardDistance uint32
	// maxRetainedKeys bounds the keys of skipped generations each ratchet
	// keeps; defaultMaxRetainedKeys unless set.
	maxRetainedKeys int

	// nodes holds the secrets of nodes not yet derived into their children
	// (or, for leaves, into their ratchets).
	nodes    map[nodeIndex][]byte
	ratchets map[LeafIndex]*[2]ratchet
}

// ratchet is one hash ratchet of a leaf. See RFC 9420, Section 9.1.
type ratchet struct {
	secret []byte // ratchet_secret_[N]_[next]
	next   uint32 // the next generation; next == math.MaxUint32 means exhausted
	// retained holds the keys of generations below next that were skipped
	// and not yet consumed; order lists their generations ascending, with
	// possibly some already consumed, for evicting the oldest.
	retained map[uint32]ratchetKey
	order    []uint32
}

// newSecretTree returns the secret tree whose root secret is
// encryptionSecret, for a ratchet tree of leafCount leaves. It copies
// encryptionSecret. See RFC 9420, Section 9.
func newSecretTree(cs CipherSuite, encryptionSecret []byte, leafCount uint32) *secretTree {
	t := &secretTree{
		cs:                 cs,
		leafCount:          leafCount,
		maxForwardDistance: defaultMaxForwardDistance,
		maxRetainedKeys:    defaultMaxRetainedKeys,
		nodes:              make(map[nodeIndex][]byte),
		ratchets:           make(map[LeafIndex]*[2]ratchet),
	}
	if leafCount > 0 {
		t.nodes[root(leafCount)] = append([]byte(nil), encryptionSecret...)
	}
	return t
}

// leafRatchets returns the two ratchets of leaf, deriving the secret tree
// down to it on first use.
func (t *secretTree) leafRatchets(leaf LeafIndex) (*[2]ratchet, error) {
	if uint32(leaf) >= t.leafCount {
		return nil, fmt.Errorf("%w: leaf %d is outside a secret tree of %d leaves", ErrUnknownSender, leaf, t.leafCount)
	}
	if r, ok := t.ratchets[leaf]; ok {
		return r, nil
	}
	// Walk down from the root to the lowest ancestor of the leaf whose
	// secret is still held; every node above it has been split already.
	target := leaf.node()
	width := nodeWidth(t.leafCount)
	x := root(t.leafCount)
	for {
		if _, ok := t.nodes[x]; ok {
			break
		}
		if x.isLeaf() {
			// Only a leaf whose ratchets exist has had its secret
			// removed, and that case returned above.
			panic("mls: secret tree lost the path to a leaf")
		}
		x = towards(x, target)
	}
	for !x.isLeaf() {
		s := t.nodes[x]
		l, r := x.left(), x.right()
		t.nodes[l] = t.cs.mustExpandWithLabel(s, "tree", []byte("left"), t.cs.SecretSize())
		// A right subtree with no leaf of the tree is never needed; its
		// index may lie past the tree's width while a subtree that has
		// leaves may not (the tree is the left part of a full one).
		if uint32(r)-(uint32(1)<<r.level()-1) < width {
			t.nodes[r] = t.cs.mustExpandWithLabel(s, "tree", []byte("right"), t.cs.SecretSize())
		}
		clear(s)
		delete(t.nodes, x)
		x = towards(x, target)
	}
	s := t.nodes[x]
	r := &[2]ratchet{
		ratchetHandshake:   {secret: t.cs.mustExpandWithLabel(s, "handshake", nil, t.cs.SecretSize())},
		ratchetApplication: {secret: t.cs.mustExpandWithLabel(s, "application", nil, t.cs.SecretSize())},
	}
	clear(s)
	delete(t.nodes, x)
	t.ratchets[leaf] = r
	return r, nil
}

// towards returns the child of the parent node x on the way to target.
func towards(x, target nodeIndex) nodeIndex {
	if target < x {
		return x.left()
	}
	return x.right()
}

// keyAt derives the key and nonce of generation g from ratchet_secret_[g].
func (t *secretTree) keyAt(secret []byte, g uint32) ratchetKey {
	key, err := t.cs.DeriveTreeSecret(secret, "key", g, t.cs.KeySize())
	if err != nil {
		panic(err)
	}
	nonce, err := t.cs.DeriveTreeSecret(secret, "nonce", g, t.cs.NonceSize())
	if err != nil {
		panic(err)
	}
	return ratchetKey{generation: g, key: key, nonce: nonce}
}

// secretAfter derives ratchet_secret_[g+1] from ratchet_secret_[g].
func (t *secretTree) secretAfter(secret []byte, g uint32) []byte {
	next, err := t.cs.DeriveTreeSecret(secret, "secret", g, t.cs.SecretSize())
	if err != nil {
		panic(err)
	}
	return next
}

// advance moves r one generation forward, deleting the old ratchet secret,
// and returns the key of the generation it leaves.
func (t *secretTree) advance(r *ratchet) ratchetKey {
	k := t.keyAt(r.secret, r.next)
	next := t.secretAfter(r.secret, r.next)
	clear(r.secret)
	r.secret = next
	r.next++
	return k
}

// next returns the key of the sender's next unused generation of its own
// ratchet and deletes it from the tree. See RFC 9420, Section 9.1.
func (t *secretTree) next(leaf LeafIndex, rt ratchetType) (ratchetKey, error) {
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return ratchetKey{}, err
	}
	r := &rs[rt]
	if r.next == math.MaxUint32 {
		return ratchetKey{}, fmt.Errorf("mls: leaf %d's %v ratchet has used all its generations", leaf, rt)
	}
	return t.advance(r), nil
}

// get returns the key of a received message's generation and deletes it:
// get is peek followed by consume. Generations skipped on the way keep
// their keys, within the tree's bounds, for messages that arrive late.
func (t *secretTree) get(leaf LeafIndex, rt ratchetType, generation uint32) (ratchetKey, error) {
	return t.lookup(leaf, rt, generation, true)
}

// peek returns the key of a received message's generation without
// consuming it: no ratchet moves and no key is deleted, so a message that
// then fails to decrypt leaves the tree as it was (peek may derive the
// tree's nodes down to leaf, which loses nothing). It fails exactly when get
// would.
func (t *secretTree) peek(leaf LeafIndex, rt ratchetType, generation uint32) (ratchetKey, error) {
	return t.lookup(leaf, rt, generation, false)
}

// consume deletes the key of a generation returned by peek, once the
// message has been decrypted with it, advancing the ratchet past it and
// retaining the keys of the generations skipped. Between peek and consume
// the caller makes no other call on the tree; if consume nonetheless fails,
// the message must be treated as not received.
func (t *secretTree) consume(leaf LeafIndex, rt ratchetType, generation uint32) error {
	k, err := t.lookup(leaf, rt, generation, true)
	if err != nil {
		return err
	}
	// The caller holds its own copy from peek; this one goes.
	clear(k.key)
	clear(k.nonce)
	return nil
}

func (t *secretTree) lookup(leaf LeafIndex, rt ratchetType, g uint32, consume bool) (ratchetKey, error) {
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return ratchetKey{}, err
	}
	r := &rs[rt]
	if g < r.next {
		k, ok := r.retained[g]
		if !ok {
			return ratchetKey{}, t.generationError(leaf, rt, g, ErrGenerationUsed)
		}
		if !consume {
			return ratchetKey{generation: g, key: slices.Clone(k.key), nonce: slices.Clone(k.nonce)}, nil
		}
		delete(r.retained, g)
		if len(r.order) > 2*len(r.retained)+16 {
			r.order = slices.Sorted(maps.Keys(r.retained))
		}
		return k, nil
	}
	if g-r.next > t.maxForwardDistance || g == math.MaxUint32 {
		return ratchetKey{}, t.generationError(leaf, rt, g, ErrGenerationTooFar)
	}
	if !consume {
		secret := slices.Clone(r.secret)
		for j := r.next; j < g; j++ {
			next := t.secretAfter(secret, j)
			clear(secret)
			secret = next
		}
		k := t.keyAt(secret, g)
		clear(secret)
		return k, nil
	}
	for r.next < g {
		k := t.advance(r)
		t.retain(r, k)
	}
	return t.advance(r), nil
}

// retain keeps the key of a skipped generation, evicting the oldest
// retained keys beyond maxRetainedKeys.
func (t *secretTree) retain(r *ratchet, k ratchetKey) {
	if t.maxRetainedKeys <= 0 {
		clear(k.key)
		clear(k.nonce)
		return
	}
	if r.retained == nil {
		r.retained = make(map[uint32]ratchetKey)
	}
	r.retained[k.generation] = k
	r.order = append(r.order, k.generation)
	for len(r.retained) > t.maxRetainedKeys {
		g := r.order[0]
		r.order = r.order[1:]
		if old, ok := r.retained[g]; ok {
			clear(old.key)
			clear(old.nonce)
			delete(r.retained, g)
		}
	}
}

func (t *secretTree) generationError(leaf LeafIndex, rt ratchetType, g uint32, err error) error {
	return &GenerationError{Leaf: leaf, Handshake: rt == ratchetHandshake, Generation: g, Err: err}
}

// senderDataKeyNonce derives sender_data_key and sender_data_nonce for a
// PrivateMessage from sender_data_secret and a sample of its ciphertext:
// the first KDF.Nh bytes, or all of it if shorter. See RFC 9420,
// Section 6.3.2.
func senderDataKeyNonce(cs CipherSuite, senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext
	if n := cs.SecretSize(); len(sample) > n {
		sample = sample[:n]
	}
	key = cs.mustExpandWithLabel(senderDataSecret, "key", sample, cs.KeySize())
	nonce = cs.mustExpandWithLabel(senderDataSecret, "nonce", sample, cs.NonceSize())
	return key, nonce
}
