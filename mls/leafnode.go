package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// LeafNodeSource says how a LeafNode came to be in the tree, which decides
// whether it carries a lifetime or a parent hash. See RFC 9420, Section 7.2.
type LeafNodeSource uint8

// The leaf node sources of RFC 9420, Section 7.2.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// Capabilities lists the protocol features a client supports. Unknown and
// GREASE values are kept as they are: RFC 9420 requires them to be ignored,
// not refused. See RFC 9420, Section 7.2.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// addCodePoints writes a vector<V> of 16-bit code points, the shape of every
// list in Capabilities and RequiredCapabilities.
func addCodePoints[T ~uint16](b *cryptobyte.Builder, v []T) {
	addVector(b, func(b *cryptobyte.Builder) {
		for _, x := range v {
			b.AddUint16(uint16(x))
		}
	})
}

// readCodePoints reads a vector<V> of 16-bit code points; an empty vector
// decodes as a non-nil empty slice.
func readCodePoints[T ~uint16](s *cryptobyte.String, out *[]T) bool {
	v := []T{}
	ok := readVectorOf(s, func(s *cryptobyte.String) bool {
		var x uint16
		if !s.ReadUint16(&x) {
			return false
		}
		v = append(v, T(x))
		return true
	})
	*out = v
	return ok
}

func (c *Capabilities) marshal(b *cryptobyte.Builder) {
	addCodePoints(b, c.Versions)
	addCodePoints(b, c.CipherSuites)
	addCodePoints(b, c.Extensions)
	addCodePoints(b, c.Proposals)
	addCodePoints(b, c.Credentials)
}

func (c *Capabilities) unmarshal(s *cryptobyte.String) bool {
	return readCodePoints(s, &c.Versions) &&
		readCodePoints(s, &c.CipherSuites) &&
		readCodePoints(s, &c.Extensions) &&
		readCodePoints(s, &c.Proposals) &&
		readCodePoints(s, &c.Credentials)
}

// Lifetime bounds the validity of a KeyPackage's leaf node, in seconds since
// the Unix epoch. See RFC 9420, Section 7.2.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

func (l *Lifetime) marshal(b *cryptobyte.Builder) {
	b.AddUint64(l.NotBefore)
	b.AddUint64(l.NotAfter)
}

func (l *Lifetime) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&l.NotBefore) && s.ReadUint64(&l.NotAfter)
}

// LeafNode describes one member of the group, signed by that member. See
// RFC 9420, Section 7.2.
type LeafNode struct {
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	// Lifetime is set when Source is LeafNodeSourceKeyPackage.
	Lifetime *Lifetime
	// ParentHash is set when Source is LeafNodeSourceCommit.
	ParentHash []byte
	Extensions Extensions
	// Signature is SignWithLabel(., "LeafNodeTBS", LeafNodeTBS); see TBS.
	Signature []byte
}

// marshalFields writes the fields that LeafNode and LeafNodeTBS share:
// everything up to and including the extensions.
func (n *LeafNode) marshalFields(b *cryptobyte.Builder) {
	addOpaque(b, n.EncryptionKey)
	addOpaque(b, n.SignatureKey)
	n.Credential.marshal(b)
	n.Capabilities.marshal(b)
	b.AddUint8(uint8(n.Source))
	switch n.Source {
	case LeafNodeSourceKeyPackage:
		if n.Lifetime == nil {
			b.SetError(fmt.Errorf("mls: cannot encode key_package LeafNode without a lifetime"))
			return
		}
		n.Lifetime.marshal(b)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		addOpaque(b, n.ParentHash)
	default:
		b.SetError(fmt.Errorf("mls: cannot encode LeafNode with unknown leaf_node_source %d", n.Source))
		return
	}
	n.Extensions.marshal(b)
}

func (n *LeafNode) marshal(b *cryptobyte.Builder) {
	n.marshalFields(b)
	addOpaque(b, n.Signature)
}

func (n *LeafNode) unmarshal(s *cryptobyte.String) bool {
	if !readOpaqueCopy(s, &n.EncryptionKey) ||
		!readOpaqueCopy(s, &n.SignatureKey) ||
		!n.Credential.unmarshal(s) ||
		!n.Capabilities.unmarshal(s) ||
		!s.ReadUint8((*uint8)(&n.Source)) {
		return false
	}
	switch n.Source {
	case LeafNodeSourceKeyPackage:
		n.Lifetime = new(Lifetime)
		if !n.Lifetime.unmarshal(s) {
			return false
		}
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		if !readOpaqueCopy(s, &n.ParentHash) {
			return false
		}
	default:
		return false
	}
	return n.Extensions.unmarshal(s) && readOpaqueCopy(s, &n.Signature)
}

// TBS returns the encoded LeafNodeTBS, the content that Signature covers.
// groupID and leaf bind update and commit leaf nodes to their place in a
// group; they are ignored for a key_package leaf node, which is made before
// its group is known. See RFC 9420, Section 7.2.
func (n *LeafNode) TBS(groupID []byte, leaf LeafIndex) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		n.marshalFields(b)
		switch n.Source {
		case LeafNodeSourceUpdate, LeafNodeSourceCommit:
			addOpaque(b, groupID)
			b.AddUint32(uint32(leaf))
		}
	})
}

// Marshal returns the TLS encoding of the LeafNode.
func (n *LeafNode) Marshal() ([]byte, error) { return marshal(n.marshal) }

// UnmarshalLeafNode decodes a LeafNode, rejecting trailing bytes.
func UnmarshalLeafNode(data []byte) (*LeafNode, error) {
	n := new(LeafNode)
	if err := unmarshal(data, "LeafNode", n.unmarshal); err != nil {
		return nil, err
	}
	return n, nil
}

// sign sets the leaf's signature over its LeafNodeTBS; groupID and leaf are
// used for the update and commit sources. See RFC 9420, Section 7.2.
func (n *LeafNode) sign(cs CipherSuite, key *SignaturePrivateKey, groupID []byte, leaf LeafIndex) error {
	tbs, err := n.TBS(groupID, leaf)
	if err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(key, "LeafNodeTBS", tbs)
	if err != nil {
		return err
	}
	n.Signature = sig
	return nil
}

// verifySignature checks the leaf's signature with its own signature key.
// See RFC 9420, Section 7.3.
func (n *LeafNode) verifySignature(cs CipherSuite, groupID []byte, leaf LeafIndex) error {
	tbs, err := n.TBS(groupID, leaf)
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(n.SignatureKey, "LeafNodeTBS", tbs, n.Signature); err != nil {
		return fmt.Errorf("mls: leaf %d: %w", leaf, err)
	}
	return nil
}
