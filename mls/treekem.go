package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// This file is TreeKEM: creating an UpdatePath as a committer and
// processing one as a receiver. See RFC 9420, Sections 7.4 to 7.6 and 7.9.

// treePrivateKeys is the part of the ratchet tree's private keys that one
// member holds: its leaf's encryption key and the keys of the parent nodes
// on its direct path that it has learned from path secrets.
type treePrivateKeys struct {
	Leaf LeafIndex
	keys map[nodeIndex]*HPKEPrivateKey
}

// newTreePrivateKeys starts the private state of the member at leaf, which
// holds leafKey, the private key of its leaf's encryption_key.
func newTreePrivateKeys(leaf LeafIndex, leafKey *HPKEPrivateKey) *treePrivateKeys {
	return &treePrivateKeys{Leaf: leaf, keys: map[nodeIndex]*HPKEPrivateKey{leaf.node(): leafKey}}
}

func (k *treePrivateKeys) clone() *treePrivateKeys {
	return &treePrivateKeys{Leaf: k.Leaf, keys: maps.Clone(k.keys)}
}

// key returns the private key of node x, or nil if the member has none.
func (k *treePrivateKeys) key(x nodeIndex) *HPKEPrivateKey { return k.keys[x] }

// prune drops the keys of nodes that are now blank or carry another public
// key, as after an Update or Remove proposal blanks a path.
func (k *treePrivateKeys) prune(t *ratchetTree) {
	for x, key := range k.keys {
		if int(x) >= len(t.nodes) || t.nodes[x] == nil || !bytes.Equal(t.encryptionKey(x), key.pub) {
			delete(k.keys, x)
		}
	}
}

// addPathSecret sets the key of node x from its path secret and derives
// upward the keys of the non-blank ancestors of x, checking each against
// the tree's public key: how a new member uses the path_secret of its
// GroupSecrets. See RFC 9420, Sections 7.4 and 12.4.3.1.
func (k *treePrivateKeys) addPathSecret(t *ratchetTree, x nodeIndex, pathSecret []byte) error {
	n := t.leafCount()
	cs := t.suite
	for {
		if p := t.parentNode(x); p != nil {
			key, err := cs.DeriveHPKEKey(cs.DeriveSecret(pathSecret, "node"))
			if err != nil {
				return err
			}
			if !bytes.Equal(key.pub, p.EncryptionKey) {
				return fmt.Errorf("mls: path secret for node %d derives a key that does not match the tree", x)
			}
			k.keys[x] = key
			pathSecret = cs.DeriveSecret(pathSecret, "path")
		}
		if x == root(n) {
			return nil
		}
		x = x.parent(n)
	}
}

// Bytes returns the encoded private keys, for the group state's store:
// the leaf index, then each node index with its serialized private key, in
// node order.
func (k *treePrivateKeys) Bytes() ([]byte, error) {
	nodes := slices.Sorted(maps.Keys(k.keys))
	return marshal(func(b *cryptobyte.Builder) {
		b.AddUint32(uint32(k.Leaf))
		addVector(b, func(b *cryptobyte.Builder) {
			for _, x := range nodes {
				sk, err := k.keys[x].Bytes()
				if err != nil {
					b.SetError(err)
					return
				}
				b.AddUint32(uint32(x))
				addOpaque(b, sk)
			}
		})
	})
}

// parseTreePrivateKeys decodes the output of treePrivateKeys.Bytes.
func parseTreePrivateKeys(cs CipherSuite, data []byte) (*treePrivateKeys, error) {
	k := &treePrivateKeys{keys: make(map[nodeIndex]*HPKEPrivateKey)}
	var keyErr error
	err := unmarshal(data, "tree private keys", func(s *cryptobyte.String) bool {
		return s.ReadUint32((*uint32)(&k.Leaf)) && readVectorOf(s, func(s *cryptobyte.String) bool {
			var x uint32
			var sk []byte
			if !s.ReadUint32(&x) || !readOpaque(s, &sk) {
				return false
			}
			if _, dup := k.keys[nodeIndex(x)]; dup {
				return false
			}
			key, err := cs.NewHPKEPrivateKey(sk)
			if err != nil {
				keyErr = err
				return false
			}
			k.keys[nodeIndex(x)] = key
			return true
		})
	})
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// pathParentHashes computes the parent hashes along a new filtered direct
// path fdp of leaf l whose nodes get the public keys pubs: hashes[i] is the
// parent_hash of node fdp[i] (empty at the root), and leafHash that of the
// leaf. Only the copath subtrees are read, which the path does not change.
// See RFC 9420, Section 7.9.
func (t *ratchetTree) pathParentHashes(l LeafIndex, fdp []nodeIndex, pubs [][]byte) (hashes [][]byte, leafHash []byte, err error) {
	hashes = make([][]byte, len(fdp))
	ph := []byte{}
	for i := len(fdp) - 1; i >= 0; i-- {
		hashes[i] = ph
		sib, err := t.treeHash(copathChild(fdp[i], l.node()))
		if err != nil {
			return nil, nil, err
		}
		in, err := marshal(func(b *cryptobyte.Builder) {
			addOpaque(b, pubs[i])
			addOpaque(b, ph)
			addOpaque(b, sib)
		})
		if err != nil {
			return nil, nil, err
		}
		ph = t.suite.hash(in)
	}
	return hashes, ph, nil
}

// mergePath blanks l's direct path and sets the nodes of its filtered
// direct path fdp to the given public keys and parent hashes, with no
// unmerged leaves. See RFC 9420, Section 7.5.
func (t *ratchetTree) mergePath(l LeafIndex, fdp []nodeIndex, pubs, hashes [][]byte) {
	t.blankDirectPath(l)
	for i, x := range fdp {
		t.nodes[x] = &Node{Type: NodeTypeParent, Parent: &ParentNode{
			EncryptionKey:  slices.Clone(pubs[i]),
			ParentHash:     hashes[i],
			UnmergedLeaves: []LeafIndex{},
		}}
	}
}

// resolutionExcluding is the resolution of x without the leaves in exclude,
// the members added by the commit being made. See RFC 9420, Section 7.6.
func (t *ratchetTree) resolutionExcluding(x nodeIndex, exclude []LeafIndex) []nodeIndex {
	res := t.resolution(x)
	if len(exclude) == 0 {
		return res
	}
	return slices.DeleteFunc(res, func(r nodeIndex) bool {
		return r.isLeaf() && slices.Contains(exclude, r.leaf())
	})
}

// createdPath is the outcome of createUpdatePath for the committer.
type createdPath struct {
	Path *UpdatePath
	// Keys are the committer's private keys after the commit: the new leaf
	// key and the keys of its filtered direct path.
	Keys *treePrivateKeys
	// CommitSecret feeds the key schedule of the new epoch.
	CommitSecret []byte
	// pathSecrets maps each node of the filtered direct path to its path
	// secret, for the GroupSecrets of new members.
	pathSecrets map[nodeIndex][]byte
}

// pathSecretFor returns the path secret a Welcome gives the new member at
// leaf l: that of the lowest node of the committer's filtered direct path
// above l, with its node index. See RFC 9420, Section 12.4.3.1.
func (c *createdPath) pathSecretFor(t *ratchetTree, l LeafIndex) (nodeIndex, []byte, error) {
	for _, x := range t.filteredDirectPath(c.Keys.Leaf) {
		if inSubtree(l.node(), x) {
			return x, c.pathSecrets[x], nil
		}
	}
	return 0, nil, fmt.Errorf("mls: leaf %d is not below the committer's path", l)
}

// createUpdatePath refreshes the committer's path in t, which the caller has
// already changed by the commit's proposals (so t should be a staged copy).
// newLeaf gives the content of the committer's new leaf node (credential,
// capabilities, extensions, signature key); its encryption key, source and
// parent hash are set here and it is signed with sigKey. exclude lists the
// leaves added by the commit, to which no path secret is encrypted.
// groupContext returns the encoded provisional GroupContext for the tree
// hash after the path is merged, which binds the encryptions.
// See RFC 9420, Sections 7.4 to 7.6 and 12.4.2.
func (t *ratchetTree) createUpdatePath(from LeafIndex, newLeaf *LeafNode, sigKey *SignaturePrivateKey, groupID []byte, exclude []LeafIndex, groupContext func(treeHash []byte) ([]byte, error)) (*createdPath, error) {
	cs := t.suite
	if t.leaf(from) == nil {
		return nil, fmt.Errorf("mls: committer leaf %d is blank", from)
	}
	leafKey, err := cs.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	keys := newTreePrivateKeys(from, leafKey)
	fdp := t.filteredDirectPath(from)

	pathSecret := make([]byte, cs.SecretSize())
	rand.Read(pathSecret)
	secrets := make([][]byte, len(fdp))
	pubs := make([][]byte, len(fdp))
	for i, x := range fdp {
		if i > 0 {
			pathSecret = cs.DeriveSecret(pathSecret, "path")
		}
		secrets[i] = pathSecret
		key, err := cs.DeriveHPKEKey(cs.DeriveSecret(pathSecret, "node"))
		if err != nil {
			return nil, err
		}
		keys.keys[x] = key
		pubs[i] = key.pub
	}
	commitSecret := cs.DeriveSecret(pathSecret, "path")

	hashes, leafHash, err := t.pathParentHashes(from, fdp, pubs)
	if err != nil {
		return nil, err
	}
	leaf, err := cloneLeafNode(newLeaf)
	if err != nil {
		return nil, err
	}
	leaf.EncryptionKey = leafKey.PublicKey()
	leaf.Source = LeafNodeSourceCommit
	leaf.Lifetime = nil
	leaf.ParentHash = leafHash
	if err := leaf.sign(cs, sigKey, groupID, from); err != nil {
		return nil, err
	}
	t.mergePath(from, fdp, pubs, hashes)
	t.set(from.node(), &Node{Type: NodeTypeLeaf, Leaf: leaf})

	treeHash, err := t.rootHash()
	if err != nil {
		return nil, err
	}
	ctx, err := groupContext(treeHash)
	if err != nil {
		return nil, err
	}
	path := &UpdatePath{Nodes: make([]UpdatePathNode, len(fdp))}
	if path.LeafNode, err = cloneLeafNodeValue(leaf); err != nil {
		return nil, err
	}
	created := &createdPath{Path: path, Keys: keys, CommitSecret: commitSecret, pathSecrets: make(map[nodeIndex][]byte, len(fdp))}
	for i, x := range fdp {
		created.pathSecrets[x] = secrets[i]
		res := t.resolutionExcluding(copathChild(x, from.node()), exclude)
		enc := make([]HPKECiphertext, len(res))
		for j, r := range res {
			if enc[j], err = cs.EncryptWithLabel(t.encryptionKey(r), "UpdatePathNode", ctx, secrets[i]); err != nil {
				return nil, fmt.Errorf("mls: encrypting path secret of node %d to node %d: %w", x, r, err)
			}
		}
		path.Nodes[i] = UpdatePathNode{EncryptionKey: slices.Clone(pubs[i]), EncryptedPathSecret: enc}
	}
	return created, nil
}

func cloneLeafNodeValue(l *LeafNode) (LeafNode, error) {
	c, err := cloneLeafNode(l)
	if err != nil {
		return LeafNode{}, err
	}
	return *c, nil
}

// applyUpdatePath checks a received UpdatePath from sender against t and
// merges its public part: the leaf node (source commit, a new encryption
// key, the tree checks of validateLeafNode, parent hash) and the public keys and parent hashes of the
// filtered direct path. See RFC 9420, Sections 7.5, 7.9.2 and 12.4.2.
func (t *ratchetTree) applyUpdatePath(sender LeafIndex, path *UpdatePath, groupID []byte) error {
	cs := t.suite
	old := t.leaf(sender)
	if old == nil {
		return fmt.Errorf("mls: UpdatePath from blank leaf %d", sender)
	}
	fdp := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return fmt.Errorf("mls: UpdatePath from leaf %d has %d nodes, its filtered direct path %d", sender, len(path.Nodes), len(fdp))
	}
	leaf := &path.LeafNode
	if leaf.Source != LeafNodeSourceCommit {
		return fmt.Errorf("mls: UpdatePath leaf node from leaf %d has source %d, want commit", sender, leaf.Source)
	}
	if bytes.Equal(leaf.EncryptionKey, old.EncryptionKey) {
		return fmt.Errorf("mls: UpdatePath leaf node from leaf %d keeps its old encryption key", sender)
	}
	if err := t.validateLeafNode(groupID, sender, leaf); err != nil {
		return err
	}
	if err := cs.ValidateHPKEPublicKey(leaf.EncryptionKey); err != nil {
		return fmt.Errorf("mls: UpdatePath leaf node from leaf %d: %w", sender, err)
	}
	pubs := make([][]byte, len(fdp))
	for i := range path.Nodes {
		pubs[i] = path.Nodes[i].EncryptionKey
		if err := cs.ValidateHPKEPublicKey(pubs[i]); err != nil {
			return fmt.Errorf("mls: UpdatePath node %d: %w", fdp[i], err)
		}
	}
	hashes, leafHash, err := t.pathParentHashes(sender, fdp, pubs)
	if err != nil {
		return err
	}
	if !bytes.Equal(leaf.ParentHash, leafHash) {
		return fmt.Errorf("mls: UpdatePath leaf node from leaf %d has parent hash %x, want %x", sender, leaf.ParentHash, leafHash)
	}
	if err := t.setLeaf(sender, leaf); err != nil {
		return err
	}
	t.mergePath(sender, fdp, pubs, hashes)
	return nil
}

// receivedPath is the outcome of processing an UpdatePath as a receiver.
type receivedPath struct {
	// Keys are the receiver's private keys after the commit.
	Keys *treePrivateKeys
	// PathSecret is the path secret decrypted at the common ancestor of the
	// sender and the receiver.
	PathSecret   []byte
	CommitSecret []byte
}

// processUpdatePath merges an UpdatePath from sender into t (a staged copy)
// and decrypts it with the receiver's private keys priv, which are not
// changed. exclude lists the leaves added by the same commit; groupContext
// returns the encoded provisional GroupContext for the tree hash after the
// merge. See RFC 9420, Sections 7.5, 7.6 and 12.4.2.
func (t *ratchetTree) processUpdatePath(sender LeafIndex, path *UpdatePath, groupID []byte, exclude []LeafIndex, priv *treePrivateKeys, groupContext func(treeHash []byte) ([]byte, error)) (*receivedPath, error) {
	if priv.Leaf == sender {
		return nil, fmt.Errorf("mls: leaf %d cannot process its own UpdatePath", sender)
	}
	if err := t.applyUpdatePath(sender, path, groupID); err != nil {
		return nil, err
	}
	treeHash, err := t.rootHash()
	if err != nil {
		return nil, err
	}
	ctx, err := groupContext(treeHash)
	if err != nil {
		return nil, err
	}
	return t.decryptUpdatePath(sender, path, exclude, priv, ctx)
}

// decryptUpdatePath finds the node of the filtered direct path that covers
// the receiver, decrypts its path secret with the key the receiver holds in
// the copath child's resolution, and derives the rest of the path, checking
// each derived public key against the path. See RFC 9420, Section 7.6.
func (t *ratchetTree) decryptUpdatePath(sender LeafIndex, path *UpdatePath, exclude []LeafIndex, priv *treePrivateKeys, ctx []byte) (*receivedPath, error) {
	cs := t.suite
	fdp := t.filteredDirectPath(sender)
	me := priv.Leaf.node()
	i := slices.IndexFunc(fdp, func(x nodeIndex) bool { return inSubtree(me, x) })
	if i < 0 {
		return nil, fmt.Errorf("mls: leaf %d is not covered by the UpdatePath from leaf %d", priv.Leaf, sender)
	}
	c := copathChild(fdp[i], sender.node())
	res := t.resolutionExcluding(c, exclude)
	cts := path.Nodes[i].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, fmt.Errorf("mls: UpdatePath node %d has %d encrypted path secrets, the resolution of node %d has %d nodes", fdp[i], len(cts), c, len(res))
	}
	j := slices.IndexFunc(res, func(r nodeIndex) bool {
		k := priv.key(r)
		return k != nil && bytes.Equal(k.pub, t.encryptionKey(r))
	})
	if j < 0 {
		return nil, fmt.Errorf("mls: leaf %d holds no private key for the resolution of node %d", priv.Leaf, c)
	}
	pathSecret, err := cs.DecryptWithLabel(priv.key(res[j]), "UpdatePathNode", ctx, cts[j])
	if err != nil {
		return nil, fmt.Errorf("mls: decrypting the path secret of node %d with the key of node %d: %w", fdp[i], res[j], err)
	}
	if len(pathSecret) != cs.SecretSize() {
		return nil, fmt.Errorf("mls: path secret of node %d has %d bytes, want %d", fdp[i], len(pathSecret), cs.SecretSize())
	}
	keys := priv.clone()
	for _, x := range sender.node().directPath(t.leafCount()) {
		delete(keys.keys, x)
	}
	out := &receivedPath{Keys: keys, PathSecret: pathSecret}
	for k := i; k < len(fdp); k++ {
		if k > i {
			pathSecret = cs.DeriveSecret(pathSecret, "path")
		}
		key, err := cs.DeriveHPKEKey(cs.DeriveSecret(pathSecret, "node"))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(key.pub, path.Nodes[k].EncryptionKey) {
			return nil, fmt.Errorf("mls: path secret of node %d derives a public key that differs from the UpdatePath's", fdp[k])
		}
		keys.keys[fdp[k]] = key
	}
	out.CommitSecret = cs.DeriveSecret(pathSecret, "path")
	return out, nil
}
