package mls

import "golang.org/x/crypto/cryptobyte"

// Commit applies a list of proposals and, with Path, refreshes the
// committer's path through the tree. See RFC 9420, Section 12.4.
type Commit struct {
	Proposals []ProposalOrRef
	// Path is nil when the commit carries no UpdatePath.
	Path *UpdatePath
}

func (c *Commit) marshal(b *cryptobyte.Builder) {
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range c.Proposals {
			c.Proposals[i].marshal(b)
		}
	})
	addOptional(b, c.Path != nil, func(b *cryptobyte.Builder) { c.Path.marshal(b) })
}

func (c *Commit) unmarshal(s *cryptobyte.String) bool {
	c.Proposals = []ProposalOrRef{}
	if !readVectorOf(s, func(s *cryptobyte.String) bool {
		var p ProposalOrRef
		if !p.unmarshal(s) {
			return false
		}
		c.Proposals = append(c.Proposals, p)
		return true
	}) {
		return false
	}
	var present bool
	if !readOptional(s, &present) {
		return false
	}
	if present {
		c.Path = new(UpdatePath)
		return c.Path.unmarshal(s)
	}
	return true
}

// Marshal returns the TLS encoding of the Commit.
func (c *Commit) Marshal() ([]byte, error) { return marshal(c.marshal) }

// UnmarshalCommit decodes a Commit, rejecting trailing bytes.
func UnmarshalCommit(data []byte) (*Commit, error) {
	c := new(Commit)
	if err := unmarshal(data, "Commit", c.unmarshal); err != nil {
		return nil, err
	}
	return c, nil
}

// UpdatePath is the committer's new leaf node and the new public keys and
// encrypted path secrets along its filtered direct path. See RFC 9420,
// Section 7.6.
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (p *UpdatePath) marshal(b *cryptobyte.Builder) {
	p.LeafNode.marshal(b)
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range p.Nodes {
			p.Nodes[i].marshal(b)
		}
	})
}

func (p *UpdatePath) unmarshal(s *cryptobyte.String) bool {
	p.Nodes = []UpdatePathNode{}
	return p.LeafNode.unmarshal(s) &&
		readVectorOf(s, func(s *cryptobyte.String) bool {
			var n UpdatePathNode
			if !n.unmarshal(s) {
				return false
			}
			p.Nodes = append(p.Nodes, n)
			return true
		})
}

// UpdatePathNode is one node of an UpdatePath: its new public key and the
// path secret encrypted to each node of its copath child's resolution. See
// RFC 9420, Section 7.6.
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) marshal(b *cryptobyte.Builder) {
	addOpaque(b, n.EncryptionKey)
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].marshal(b)
		}
	})
}

func (n *UpdatePathNode) unmarshal(s *cryptobyte.String) bool {
	n.EncryptedPathSecret = []HPKECiphertext{}
	return readOpaqueCopy(s, &n.EncryptionKey) &&
		readVectorOf(s, func(s *cryptobyte.String) bool {
			var c HPKECiphertext
			if !c.unmarshal(s) {
				return false
			}
			n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
			return true
		})
}
