package mls

import "math/bits"

// This file is the array-based tree arithmetic of RFC 9420, Section 4.2 and
// Appendix C. Nodes are numbered left to right, leaves at even indices and
// parents at odd ones; a tree of n leaves (n a power of two in MLS, which
// keeps trees full) has 2n-1 nodes.

// LeafIndex numbers the leaves of a ratchet tree from 0, left to right.
type LeafIndex uint32

// nodeIndex numbers every node of the array representation.
type nodeIndex uint32

func (l LeafIndex) node() nodeIndex { return nodeIndex(2 * l) }

// leaf returns the leaf index of an even node index.
func (x nodeIndex) leaf() LeafIndex { return LeafIndex(x / 2) }

func (x nodeIndex) isLeaf() bool { return x&1 == 0 }

// level is the height of the node: 0 for leaves, 1 for their parents, ...
func (x nodeIndex) level() int { return bits.TrailingZeros32(^uint32(x)) }

// nodeWidth is the number of nodes in a tree with n leaves.
func nodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// root is the root of a tree with n leaves.
func root(n uint32) nodeIndex {
	w := nodeWidth(n)
	if w == 0 {
		return 0
	}
	return nodeIndex(uint32(1)<<(bits.Len32(w)-1) - 1)
}

// left is the left child of a parent node; callers check x is not a leaf.
func (x nodeIndex) left() nodeIndex {
	k := x.level()
	if k == 0 {
		panic("mls: leaf node has no children")
	}
	return x ^ 1<<(k-1)
}

// right is the right child of a parent node.
func (x nodeIndex) right() nodeIndex {
	k := x.level()
	if k == 0 {
		panic("mls: leaf node has no children")
	}
	return x ^ 3<<(k-1)
}

// parent is the parent of a non-root node in a tree of n leaves.
func (x nodeIndex) parent(n uint32) nodeIndex {
	if x == root(n) {
		panic("mls: root node has no parent")
	}
	k := x.level()
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ b<<(k+1)
}

// sibling is the other child of x's parent.
func (x nodeIndex) sibling(n uint32) nodeIndex {
	p := x.parent(n)
	if x < p {
		return p.right()
	}
	return p.left()
}

// directPath lists x's ancestors from its parent up to the root.
func (x nodeIndex) directPath(n uint32) []nodeIndex {
	r := root(n)
	var d []nodeIndex
	for x != r {
		x = x.parent(n)
		d = append(d, x)
	}
	return d
}

// copath lists the siblings of x and of each of its ancestors below the root.
func (x nodeIndex) copath(n uint32) []nodeIndex {
	r := root(n)
	var d []nodeIndex
	for x != r {
		d = append(d, x.sibling(n))
		x = x.parent(n)
	}
	return d
}

// commonAncestor is the lowest node on the direct paths of both x and y
// (including x and y themselves). See RFC 9420, Appendix C.
func commonAncestor(x, y nodeIndex) nodeIndex {
	lx, ly := x.level()+1, y.level()+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	k := 0
	for x != y {
		x, y = x>>1, y>>1
		k++
	}
	return x<<k + 1<<(k-1) - 1
}
