package mls

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/crypto/cryptobyte"
)

// This file holds the hashes that bind the ratchet tree: tree hashes
// (RFC 9420, Section 7.8) and parent hashes (Section 7.9), and the checks a
// client runs on a whole tree it did not build (Section 12.4.3.1).

// hashLeafNode is the hash of TreeHashInput for a leaf (LeafNodeHashInput);
// leaf is nil for a blank leaf. See RFC 9420, Section 7.8.
func (cs CipherSuite) hashLeafNode(l LeafIndex, leaf *LeafNode) ([]byte, error) {
	in, err := marshal(func(b *cryptobyte.Builder) {
		b.AddUint8(uint8(NodeTypeLeaf))
		b.AddUint32(uint32(l))
		addOptional(b, leaf != nil, func(b *cryptobyte.Builder) { leaf.marshal(b) })
	})
	if err != nil {
		return nil, err
	}
	return cs.hash(in), nil
}

// hashParentNode is the hash of TreeHashInput for a parent
// (ParentNodeHashInput); p is nil for a blank parent. See RFC 9420,
// Section 7.8.
func (cs CipherSuite) hashParentNode(p *ParentNode, left, right []byte) ([]byte, error) {
	in, err := marshal(func(b *cryptobyte.Builder) {
		b.AddUint8(uint8(NodeTypeParent))
		addOptional(b, p != nil, func(b *cryptobyte.Builder) { p.marshal(b) })
		addOpaque(b, left)
		addOpaque(b, right)
	})
	if err != nil {
		return nil, err
	}
	return cs.hash(in), nil
}

// treeHash returns the tree hash of the subtree rooted at x, computing only
// the nodes whose cached hash a change has cleared. See RFC 9420,
// Section 7.8.
func (t *ratchetTree) treeHash(x nodeIndex) ([]byte, error) {
	if h := t.hashes[x]; h != nil {
		return h, nil
	}
	var h []byte
	var err error
	if x.isLeaf() {
		h, err = t.suite.hashLeafNode(x.leaf(), t.leaf(x.leaf()))
	} else {
		var left, right []byte
		if left, err = t.treeHash(x.left()); err != nil {
			return nil, err
		}
		if right, err = t.treeHash(x.right()); err != nil {
			return nil, err
		}
		h, err = t.suite.hashParentNode(t.parentNode(x), left, right)
	}
	if err != nil {
		return nil, fmt.Errorf("mls: tree hash of node %d: %w", x, err)
	}
	t.hashes[x] = h
	return h, nil
}

// rootHash returns the tree hash of the whole tree, the tree_hash of the
// GroupContext.
func (t *ratchetTree) rootHash() ([]byte, error) {
	return t.treeHash(root(t.leafCount()))
}

// treeHashWithout returns the tree hash of x's subtree with the leaves in
// removed blanked and dropped from every unmerged_leaves list, the
// "original sibling tree hash" of RFC 9420, Section 7.9.
func (t *ratchetTree) treeHashWithout(x nodeIndex, removed []LeafIndex) ([]byte, error) {
	touched := false
	for _, l := range removed {
		if inSubtree(l.node(), x) {
			touched = true
			break
		}
	}
	if !touched {
		return t.treeHash(x)
	}
	if x.isLeaf() {
		return t.suite.hashLeafNode(x.leaf(), nil)
	}
	left, err := t.treeHashWithout(x.left(), removed)
	if err != nil {
		return nil, err
	}
	right, err := t.treeHashWithout(x.right(), removed)
	if err != nil {
		return nil, err
	}
	p := t.parentNode(x)
	if p != nil {
		q := *p
		q.UnmergedLeaves = slices.DeleteFunc(slices.Clone(p.UnmergedLeaves), func(l LeafIndex) bool {
			return slices.Contains(removed, l)
		})
		p = &q
	}
	return t.suite.hashParentNode(p, left, right)
}

// parentHash computes the parent hash of the non-blank parent node p with
// copath child s: the value its child on the other side must carry.
// See RFC 9420, Section 7.9.
func (t *ratchetTree) parentHash(p, s nodeIndex) ([]byte, error) {
	node := t.parentNode(p)
	sib, err := t.treeHashWithout(s, node.UnmergedLeaves)
	if err != nil {
		return nil, err
	}
	in, err := marshal(func(b *cryptobyte.Builder) {
		addOpaque(b, node.EncryptionKey)
		addOpaque(b, node.ParentHash)
		addOpaque(b, sib)
	})
	if err != nil {
		return nil, err
	}
	return t.suite.hash(in), nil
}

// nodeParentHash returns the parent_hash a non-blank node carries: nil for
// a leaf that does not come from a commit.
func (t *ratchetTree) nodeParentHash(x nodeIndex) []byte {
	n := t.nodes[x]
	if n.Type == NodeTypeLeaf {
		if n.Leaf.Source != LeafNodeSourceCommit {
			return nil
		}
		return n.Leaf.ParentHash
	}
	return n.Parent.ParentHash
}

// verifyParentHashes checks that every non-blank parent node is parent-hash
// valid, top down: exactly one descendant D of each parent P carries P's
// parent hash, with D in the resolution of P's child C and the rest of that
// resolution being P's unmerged leaves under C. See RFC 9420, Section 7.9.2.
func (t *ratchetTree) verifyParentHashes() error {
	var res []nodeIndex
	for x := nodeIndex(1); int(x) < len(t.nodes); x += 2 {
		p := t.parentNode(x)
		if p == nil {
			continue
		}
		valid := 0
		for _, c := range []nodeIndex{x.left(), x.right()} {
			s := copathChild(x, c)
			res = t.appendResolution(res[:0], c)
			var unmerged []nodeIndex
			for _, l := range p.UnmergedLeaves {
				if inSubtree(l.node(), c) {
					unmerged = append(unmerged, l.node())
				}
			}
			if len(res) != len(unmerged)+1 {
				continue
			}
			d, others := nodeIndex(0), 0
			for _, r := range res {
				if slices.Contains(unmerged, r) {
					others++
				} else {
					d = r
				}
			}
			if others != len(unmerged) {
				continue
			}
			want, err := t.parentHash(x, s)
			if err != nil {
				return err
			}
			if bytes.Equal(t.nodeParentHash(d), want) {
				valid++
			}
		}
		if valid != 1 {
			return fmt.Errorf("mls: parent node %d is not parent-hash valid (%d descendants match its parent hash, want 1)", x, valid)
		}
	}
	return nil
}

// verifyUnmergedLeaves checks that each unmerged leaf of a parent node is a
// non-blank leaf below it, listed as unmerged by every non-blank parent in
// between. See RFC 9420, Section 12.4.3.1.
func (t *ratchetTree) verifyUnmergedLeaves() error {
	n := t.leafCount()
	for x := nodeIndex(1); int(x) < len(t.nodes); x += 2 {
		p := t.parentNode(x)
		if p == nil {
			continue
		}
		for _, l := range p.UnmergedLeaves {
			if uint32(l) >= n || !inSubtree(l.node(), x) {
				return fmt.Errorf("mls: parent node %d lists leaf %d as unmerged, which is not below it", x, l)
			}
			if t.leaf(l) == nil {
				return fmt.Errorf("mls: parent node %d lists blank leaf %d as unmerged", x, l)
			}
			for y := l.node().parent(n); y != x; y = y.parent(n) {
				if q := t.parentNode(y); q != nil && !slices.Contains(q.UnmergedLeaves, l) {
					return fmt.Errorf("mls: parent node %d lists leaf %d as unmerged but parent node %d between them does not", x, l, y)
				}
			}
		}
	}
	return nil
}

// validate checks a ratchet tree received from another client, as a new
// member must before joining: parent hashes, unmerged leaves, uniqueness of
// keys, and each leaf node (signature, credential types and extensions
// against the capabilities). checkLeaf, if not nil, runs the
// checks that need the application: the credential against the
// authentication service, the lifetime, the group's required capabilities.
// The caller compares the tree hash with GroupInfo's. See RFC 9420,
// Sections 7.3 and 12.4.3.1.
func (t *ratchetTree) validate(groupID []byte, checkLeaf func(LeafIndex, *LeafNode) error) error {
	if err := t.verifyUnmergedLeaves(); err != nil {
		return err
	}
	encKeys := make(map[string]nodeIndex)
	for x, n := range t.nodes {
		if n == nil {
			continue
		}
		k := string(t.encryptionKey(nodeIndex(x)))
		if y, dup := encKeys[k]; dup {
			return fmt.Errorf("mls: nodes %d and %d have the same encryption key", y, x)
		}
		encKeys[k] = nodeIndex(x)
	}
	// Credential types in use, to check each leaf supports all of them.
	var inUse []CredentialType
	_ = t.leafNodes(func(_ LeafIndex, l *LeafNode) error {
		if !slices.Contains(inUse, l.Credential.Type) {
			inUse = append(inUse, l.Credential.Type)
		}
		return nil
	})
	// The leaf signatures are most of the cost of validating a large
	// tree; they are checked concurrently, and reported in leaf order.
	sigErrs := t.verifyLeafSignatures(groupID)
	sigKeys := make(map[string]LeafIndex)
	err := t.leafNodes(func(i LeafIndex, l *LeafNode) error {
		if j, dup := sigKeys[string(l.SignatureKey)]; dup {
			return fmt.Errorf("mls: leaves %d and %d have the same signature key", j, i)
		}
		sigKeys[string(l.SignatureKey)] = i
		if err := sigErrs[i]; err != nil {
			return err
		}
		if err := t.validateLeafCapabilities(i, l, inUse); err != nil {
			return err
		}
		if checkLeaf != nil {
			return checkLeaf(i, l)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Last, so that a bad leaf is reported as such rather than as the
	// broken parent-hash chain it also causes.
	return t.verifyParentHashes()
}

// validateLeaf runs the checks of RFC 9420, Section 7.3 that need only the
// tree: the signature, every credential type in use among the capabilities,
// and the extensions listed as supported. Section 7.3 does not ask for the
// group's cipher suite among the capabilities, and the official treekem
// vectors have commit leaf nodes that do not list it.
func (t *ratchetTree) validateLeaf(groupID []byte, i LeafIndex, l *LeafNode, credTypes []CredentialType) error {
	if err := l.verifySignature(t.suite, groupID, i); err != nil {
		return err
	}
	return t.validateLeafCapabilities(i, l, credTypes)
}

// verifyLeafSignatures verifies the signature of every non-blank leaf,
// spread over GOMAXPROCS goroutines, and returns the error of each leaf
// whose signature does not verify.
func (t *ratchetTree) verifyLeafSignatures(groupID []byte) map[LeafIndex]error {
	n := t.leafCount()
	workers := min(runtime.GOMAXPROCS(0), int(n/64)+1)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := uint32(w); i < n; i += uint32(workers) {
				if l := t.leaf(LeafIndex(i)); l != nil {
					errs[i] = l.verifySignature(t.suite, groupID, LeafIndex(i))
				}
			}
		})
	}
	wg.Wait()
	out := map[LeafIndex]error{}
	for i, err := range errs {
		if err != nil {
			out[LeafIndex(i)] = err
		}
	}
	return out
}

// validateLeafCapabilities is validateLeaf without the signature.
func (t *ratchetTree) validateLeafCapabilities(i LeafIndex, l *LeafNode, credTypes []CredentialType) error {
	for _, ct := range credTypes {
		if !slices.Contains(l.Capabilities.Credentials, ct) {
			return fmt.Errorf("mls: leaf %d does not support credential type %d used in the group", i, ct)
		}
	}
	for _, e := range l.Extensions {
		if e.Type > 5 && !slices.Contains(l.Capabilities.Extensions, e.Type) { // 1 to 5 are default
			return fmt.Errorf("mls: leaf %d has extension %d that its capabilities do not list", i, e.Type)
		}
	}
	return nil
}

// validateLeafNode checks a leaf node that is about to occupy leaf i, from an
// Update proposal or an UpdatePath, against the rest of the tree: the checks
// of validateLeaf, its credential type supported by every other member, and
// its encryption and signature keys used by no other leaf. Credential
// validation and the lifetime are the caller's. See RFC 9420, Section 7.3.
func (t *ratchetTree) validateLeafNode(groupID []byte, i LeafIndex, l *LeafNode) error {
	credTypes := []CredentialType{l.Credential.Type}
	err := t.leafNodes(func(j LeafIndex, other *LeafNode) error {
		if j == i {
			return nil
		}
		if bytes.Equal(other.EncryptionKey, l.EncryptionKey) {
			return fmt.Errorf("mls: leaf node for leaf %d reuses the encryption key of leaf %d", i, j)
		}
		if bytes.Equal(other.SignatureKey, l.SignatureKey) {
			return fmt.Errorf("mls: leaf node for leaf %d reuses the signature key of leaf %d", i, j)
		}
		if !slices.Contains(other.Capabilities.Credentials, l.Credential.Type) {
			return fmt.Errorf("mls: leaf node for leaf %d has credential type %d, which leaf %d does not support", i, l.Credential.Type, j)
		}
		if !slices.Contains(credTypes, other.Credential.Type) {
			credTypes = append(credTypes, other.Credential.Type)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return t.validateLeaf(groupID, i, l, credTypes)
}
