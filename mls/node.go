package mls

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// NodeType says whether a ratchet tree node is a leaf or a parent. See
// RFC 9420, Section 12.4.3.3.
type NodeType uint8

// The node types of RFC 9420, Section 12.4.3.3.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// ParentNode is the public content of an interior node of the ratchet tree.
// See RFC 9420, Section 7.1.
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []LeafIndex
}

func (p *ParentNode) marshal(b *cryptobyte.Builder) {
	addOpaque(b, p.EncryptionKey)
	addOpaque(b, p.ParentHash)
	addVector(b, func(b *cryptobyte.Builder) {
		for _, l := range p.UnmergedLeaves {
			b.AddUint32(uint32(l))
		}
	})
}

func (p *ParentNode) unmarshal(s *cryptobyte.String) bool {
	p.UnmergedLeaves = []LeafIndex{}
	return readOpaqueCopy(s, &p.EncryptionKey) &&
		readOpaqueCopy(s, &p.ParentHash) &&
		readVectorOf(s, func(s *cryptobyte.String) bool {
			var l uint32
			if !s.ReadUint32(&l) {
				return false
			}
			p.UnmergedLeaves = append(p.UnmergedLeaves, LeafIndex(l))
			return true
		})
}

// Node is a non-blank node of the ratchet tree as the ratchet_tree extension
// carries it: Leaf is set when Type is NodeTypeLeaf, Parent when it is
// NodeTypeParent. See RFC 9420, Section 12.4.3.3.
type Node struct {
	Type   NodeType
	Leaf   *LeafNode
	Parent *ParentNode
}

func (n *Node) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(n.Type))
	switch {
	case n.Type == NodeTypeLeaf && n.Leaf != nil:
		n.Leaf.marshal(b)
	case n.Type == NodeTypeParent && n.Parent != nil:
		n.Parent.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode Node of type %d without its content", n.Type))
	}
}

func (n *Node) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint8((*uint8)(&n.Type)) {
		return false
	}
	switch n.Type {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		return n.Leaf.unmarshal(s)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		return n.Parent.unmarshal(s)
	}
	return false
}

// RatchetTree is the payload of the ratchet_tree extension,
// optional<Node> ratchet_tree<V>: the tree's nodes in array order (leaves at
// even indices), with nil for a blank node. See RFC 9420, Section 12.4.3.3.
type RatchetTree []*Node

// marshal writes the tree without its trailing blank nodes, which the sender
// must not include.
func (t RatchetTree) marshal(b *cryptobyte.Builder) {
	end := len(t)
	for end > 0 && t[end-1] == nil {
		end--
	}
	if end == 0 {
		b.SetError(errors.New("mls: cannot encode a ratchet tree with no non-blank node"))
		return
	}
	addVector(b, func(b *cryptobyte.Builder) {
		for _, n := range t[:end] {
			addOptional(b, n != nil, func(b *cryptobyte.Builder) { n.marshal(b) })
		}
	})
}

// unmarshal reads the ratchet_tree extension payload, refusing a list whose
// last node is blank, as the receiver must.
func (t *RatchetTree) unmarshal(s *cryptobyte.String) bool {
	var out RatchetTree
	ok := readVectorOf(s, func(s *cryptobyte.String) bool {
		var present bool
		if !readOptional(s, &present) {
			return false
		}
		if !present {
			out = append(out, nil)
			return true
		}
		n := new(Node)
		if !n.unmarshal(s) {
			return false
		}
		out = append(out, n)
		return true
	})
	*t = out
	return ok && len(out) > 0 && out[len(out)-1] != nil
}

// Marshal returns the TLS encoding of the ratchet_tree extension payload.
func (t RatchetTree) Marshal() ([]byte, error) { return marshal(t.marshal) }

// UnmarshalRatchetTree decodes a ratchet_tree extension payload, rejecting
// trailing bytes, an empty tree and a trailing blank node.
func UnmarshalRatchetTree(data []byte) (RatchetTree, error) {
	var t RatchetTree
	if err := unmarshal(data, "ratchet_tree", t.unmarshal); err != nil {
		return nil, err
	}
	return t, nil
}
