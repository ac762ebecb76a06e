package mls

import (
	"fmt"
	"slices"
)

// ratchetTree is a group's ratchet tree in memory: the nodes in array order
// (RFC 9420, Section 4.2), with a leaf count that is always a power of two
// (Section 7.7), and a cache of tree hashes (Section 7.8).
//
// Nodes stored in the tree are never modified in place: every change stores
// a new *Node. That makes clone a copy of two slices of pointers, which is
// what lets the group stage a commit on a copy and drop it on failure.
//
// A ratchetTree is not safe for concurrent use, not even for reads: hashing
// fills the cache. A tree received from another client must pass validate
// before any other method relies on its unmerged_leaves.
type ratchetTree struct {
	suite CipherSuite
	// nodes has nodeWidth(leaves) entries; nil is a blank node.
	nodes []*Node
	// hashes caches the tree hash of each node; nil means not computed. A
	// change to a node clears it and its ancestors' entries only.
	hashes [][]byte
}

// newRatchetTree builds a tree from the ratchet_tree extension payload,
// padding it with blank nodes to a full tree. The nodes are copied.
// See RFC 9420, Section 12.4.3.3.
func newRatchetTree(cs CipherSuite, wire RatchetTree) (*ratchetTree, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(wire) == 0 {
		return nil, fmt.Errorf("mls: empty ratchet tree")
	}
	if len(wire) > 1<<31 {
		return nil, fmt.Errorf("mls: ratchet tree of %d nodes is too large", len(wire))
	}
	leaves := uint32(1)
	for nodeWidth(leaves) < uint32(len(wire)) {
		leaves *= 2
	}
	t := &ratchetTree{suite: cs}
	t.resize(leaves)
	for i, n := range wire {
		if n == nil {
			continue
		}
		x := nodeIndex(i)
		switch {
		case x.isLeaf() && n.Type == NodeTypeLeaf && n.Leaf != nil:
		case !x.isLeaf() && n.Type == NodeTypeParent && n.Parent != nil:
		default:
			return nil, fmt.Errorf("mls: ratchet tree node %d has node type %d, which does not fit its position", i, n.Type)
		}
		c, err := cloneNode(n)
		if err != nil {
			return nil, err
		}
		t.nodes[i] = c
	}
	return t, nil
}

// cloneNode returns a deep copy of n.
func cloneNode(n *Node) (*Node, error) {
	if n.Type == NodeTypeLeaf {
		l, err := cloneLeafNode(n.Leaf)
		if err != nil {
			return nil, err
		}
		return &Node{Type: NodeTypeLeaf, Leaf: l}, nil
	}
	return &Node{Type: NodeTypeParent, Parent: cloneParentNode(n.Parent)}, nil
}

// cloneLeafNode returns a deep copy of a leaf node, through its encoding so
// that no field can be forgotten.
func cloneLeafNode(l *LeafNode) (*LeafNode, error) {
	data, err := l.Marshal()
	if err != nil {
		return nil, err
	}
	return UnmarshalLeafNode(data)
}

func cloneParentNode(p *ParentNode) *ParentNode {
	return &ParentNode{
		EncryptionKey:  slices.Clone(p.EncryptionKey),
		ParentHash:     slices.Clone(p.ParentHash),
		UnmergedLeaves: slices.Clone(p.UnmergedLeaves),
	}
}

// wire returns a deep copy of the tree as the ratchet_tree extension carries
// it, without trailing blank nodes. See RFC 9420, Section 12.4.3.3.
func (t *ratchetTree) wire() (RatchetTree, error) {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1] == nil {
		end--
	}
	out := make(RatchetTree, end)
	for i, n := range t.nodes[:end] {
		if n == nil {
			continue
		}
		c, err := cloneNode(n)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// clone returns a copy of the tree that can be changed without affecting t.
func (t *ratchetTree) clone() *ratchetTree {
	return &ratchetTree{suite: t.suite, nodes: slices.Clone(t.nodes), hashes: slices.Clone(t.hashes)}
}

// leafCount is the number of leaves, blank or not: a power of two.
func (t *ratchetTree) leafCount() uint32 { return uint32(len(t.nodes)+1) / 2 }

// resize sets the leaf count to n, keeping the nodes and cached hashes that
// remain. Node indices do not move when a tree grows or shrinks on the right.
func (t *ratchetTree) resize(n uint32) {
	w := int(nodeWidth(n))
	if w <= len(t.nodes) {
		clear(t.nodes[w:])
		t.nodes = t.nodes[:w]
		t.hashes = t.hashes[:w]
		return
	}
	t.nodes = append(t.nodes, make([]*Node, w-len(t.nodes))...)
	t.hashes = append(t.hashes, make([][]byte, w-len(t.hashes))...)
}

// leaf returns the leaf node at l, or nil if it is blank or out of range.
// The caller must not modify it.
func (t *ratchetTree) leaf(l LeafIndex) *LeafNode {
	x := l.node()
	if int(x) >= len(t.nodes) || t.nodes[x] == nil {
		return nil
	}
	return t.nodes[x].Leaf
}

// parentNode returns the parent node at x, or nil if it is blank. The caller
// must not modify it.
func (t *ratchetTree) parentNode(x nodeIndex) *ParentNode {
	if int(x) >= len(t.nodes) || t.nodes[x] == nil {
		return nil
	}
	return t.nodes[x].Parent
}

// encryptionKey returns the public key of a non-blank node.
func (t *ratchetTree) encryptionKey(x nodeIndex) []byte {
	n := t.nodes[x]
	if n.Type == NodeTypeLeaf {
		return n.Leaf.EncryptionKey
	}
	return n.Parent.EncryptionKey
}

// set stores n (nil to blank) at x and invalidates the cached tree hashes
// of x and its ancestors.
func (t *ratchetTree) set(x nodeIndex, n *Node) {
	t.nodes[x] = n
	t.invalidate(x)
}

func (t *ratchetTree) invalidate(x nodeIndex) {
	n := t.leafCount()
	r := root(n)
	for {
		t.hashes[x] = nil
		if x == r {
			return
		}
		x = x.parent(n)
	}
}

// setLeaf stores a copy of the leaf node at l.
func (t *ratchetTree) setLeaf(l LeafIndex, leaf *LeafNode) error {
	if uint32(l) >= t.leafCount() {
		return fmt.Errorf("mls: leaf %d is outside a tree of %d leaves", l, t.leafCount())
	}
	c, err := cloneLeafNode(leaf)
	if err != nil {
		return err
	}
	t.set(l.node(), &Node{Type: NodeTypeLeaf, Leaf: c})
	return nil
}

// blankDirectPath blanks every parent node on l's direct path.
func (t *ratchetTree) blankDirectPath(l LeafIndex) {
	for _, x := range l.node().directPath(t.leafCount()) {
		t.nodes[x] = nil
	}
	t.invalidate(l.node())
}

// resolution is the list of non-blank nodes that cover x's subtree, in
// left-to-right order, each non-blank parent followed by its unmerged
// leaves. See RFC 9420, Section 4.1.1.
func (t *ratchetTree) resolution(x nodeIndex) []nodeIndex {
	return t.appendResolution(nil, x)
}

func (t *ratchetTree) appendResolution(dst []nodeIndex, x nodeIndex) []nodeIndex {
	n := t.nodes[x]
	switch {
	case n != nil && n.Type == NodeTypeLeaf:
		return append(dst, x)
	case n != nil:
		dst = append(dst, x)
		for _, l := range n.Parent.UnmergedLeaves {
			dst = append(dst, l.node())
		}
		return dst
	case x.isLeaf():
		return dst
	}
	dst = t.appendResolution(dst, x.left())
	return t.appendResolution(dst, x.right())
}

// resolutionEmpty reports whether x's subtree has no non-blank node.
func (t *ratchetTree) resolutionEmpty(x nodeIndex) bool {
	if t.nodes[x] != nil {
		return false
	}
	if x.isLeaf() {
		return true
	}
	return t.resolutionEmpty(x.left()) && t.resolutionEmpty(x.right())
}

// filteredDirectPath is l's direct path without the nodes whose child on
// l's copath has an empty resolution. See RFC 9420, Section 4.1.2.
func (t *ratchetTree) filteredDirectPath(l LeafIndex) []nodeIndex {
	n := t.leafCount()
	var out []nodeIndex
	x := l.node()
	for r := root(n); x != r; {
		s := x.sibling(n)
		x = x.parent(n)
		if !t.resolutionEmpty(s) {
			out = append(out, x)
		}
	}
	return out
}

// copathChild returns the child of p that is not an ancestor of (or equal
// to) the node x below it.
func copathChild(p, x nodeIndex) nodeIndex {
	if x < p {
		return p.right()
	}
	return p.left()
}

// addLeaf puts a copy of leaf at the leftmost blank leaf, extending the tree
// when there is none, and records it in the unmerged_leaves of every
// non-blank parent above it. See RFC 9420, Sections 7.7 and 12.1.1.
func (t *ratchetTree) addLeaf(leaf *LeafNode) (LeafIndex, error) {
	n := t.leafCount()
	l := LeafIndex(n)
	for i := range n {
		if t.nodes[LeafIndex(i).node()] == nil {
			l = LeafIndex(i)
			break
		}
	}
	if uint32(l) == n {
		if n > 1<<30 {
			return 0, fmt.Errorf("mls: ratchet tree is full")
		}
		t.resize(2 * n)
	}
	if err := t.setLeaf(l, leaf); err != nil {
		return 0, err
	}
	for _, x := range l.node().directPath(t.leafCount()) {
		p := t.parentNode(x)
		if p == nil {
			continue
		}
		c := cloneParentNode(p)
		c.UnmergedLeaves = append(c.UnmergedLeaves, l)
		t.set(x, &Node{Type: NodeTypeParent, Parent: c})
	}
	return l, nil
}

// updateLeaf replaces the leaf node at l and blanks its direct path, as an
// Update proposal does. See RFC 9420, Section 12.1.2.
func (t *ratchetTree) updateLeaf(l LeafIndex, leaf *LeafNode) error {
	if t.leaf(l) == nil {
		return fmt.Errorf("mls: update of blank leaf %d", l)
	}
	if err := t.setLeaf(l, leaf); err != nil {
		return err
	}
	t.blankDirectPath(l)
	return nil
}

// removeLeaf blanks the leaf at l and its direct path, then truncates the
// tree while its right half is blank. See RFC 9420, Sections 7.7 and 12.1.3.
func (t *ratchetTree) removeLeaf(l LeafIndex) error {
	if t.leaf(l) == nil {
		return fmt.Errorf("mls: removal of blank leaf %d", l)
	}
	t.set(l.node(), nil)
	t.blankDirectPath(l)
	t.truncate()
	return nil
}

// truncate halves the tree while the right subtree of the root is blank.
func (t *ratchetTree) truncate() {
	for n := t.leafCount(); n > 1; n /= 2 {
		if !t.resolutionEmpty(root(n).right()) {
			return
		}
		t.resize(n / 2)
	}
}

// leafNodes calls f for every non-blank leaf until f returns an error.
func (t *ratchetTree) leafNodes(f func(LeafIndex, *LeafNode) error) error {
	for i := uint32(0); i < t.leafCount(); i++ {
		if l := t.leaf(LeafIndex(i)); l != nil {
			if err := f(LeafIndex(i), l); err != nil {
				return err
			}
		}
	}
	return nil
}

// inSubtree reports whether the node x lies in the subtree rooted at top.
func inSubtree(x, top nodeIndex) bool {
	k := top.level()
	return x.level() <= k && x>>(k+1) == top>>(k+1)
}

// subtreeLeaves returns the first leaf and the count of leaves under x.
func subtreeLeaves(x nodeIndex) (LeafIndex, uint32) {
	k := x.level()
	first := (uint32(x) >> k) << k // leftmost node of the subtree
	return LeafIndex(first / 2), 1 << k
}
