package mls

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

// benchTree is a tree of n members whose every node has a key, so that each
// UpdatePath node encrypts to one node of the copath, as in a group where
// everyone has committed. Keys are derived from the node index so that big
// trees are cheap to build; only leaf 0 has a real signature key, since
// only the committer's new leaf is verified.
type benchTree struct {
	tree   *ratchetTree
	sig    *SignaturePrivateKey
	leaf0  *LeafNode
	keys   map[nodeIndex]*HPKEPrivateKey
	gctx   func([]byte) ([]byte, error)
	member int
}

var (
	benchTreesMu sync.Mutex
	benchTrees   = map[int]*benchTree{}
)

func getBenchTree(b *testing.B, n int) *benchTree {
	b.Helper()
	benchTreesMu.Lock()
	defer benchTreesMu.Unlock()
	if bt := benchTrees[n]; bt != nil {
		return bt
	}
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	sig, err := cs.GenerateSignatureKey()
	if err != nil {
		b.Fatal(err)
	}
	derive := func(x nodeIndex) *HPKEPrivateKey {
		k, err := cs.DeriveHPKEKey(binary.BigEndian.AppendUint32(make([]byte, 28), uint32(x)))
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	bt := &benchTree{sig: sig, keys: map[nodeIndex]*HPKEPrivateKey{}, member: n}
	leaves := nextPow2(uint32(n))
	bt.tree = &ratchetTree{suite: cs}
	bt.tree.resize(leaves)
	for i := range n {
		x := LeafIndex(i).node()
		k := derive(x)
		bt.keys[x] = k
		sigKey := sig.PublicKey()
		if i > 0 {
			// Only leaf 0 signs; the others need distinct keys only.
			sigKey = binary.BigEndian.AppendUint32(make([]byte, 28), uint32(i))
		}
		leaf := &LeafNode{
			EncryptionKey: k.PublicKey(),
			SignatureKey:  sigKey,
			Credential:    Credential{Type: CredentialBasic, Identity: []byte(fmt.Sprintf("member-%d@example.org", i))},
			Capabilities: Capabilities{
				Versions:     []ProtocolVersion{ProtocolMLS10},
				CipherSuites: []CipherSuite{cs},
				Extensions:   []ExtensionType{},
				Proposals:    []ProposalType{},
				Credentials:  []CredentialType{CredentialBasic},
			},
			Source:     LeafNodeSourceCommit,
			ParentHash: make([]byte, 32),
			Extensions: Extensions{},
			Signature:  make([]byte, 64),
		}
		bt.tree.nodes[x] = &Node{Type: NodeTypeLeaf, Leaf: leaf}
		if i == 0 {
			bt.leaf0 = leaf
		}
	}
	for x := nodeIndex(1); int(x) < len(bt.tree.nodes); x += 2 {
		if bt.tree.resolutionEmpty(x.left()) {
			continue
		}
		k := derive(x)
		bt.keys[x] = k
		bt.tree.nodes[x] = &Node{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: k.PublicKey(), ParentHash: make([]byte, 32), UnmergedLeaves: []LeafIndex{}}}
	}
	if _, err := bt.tree.rootHash(); err != nil {
		b.Fatal(err)
	}
	bt.gctx = func(treeHash []byte) ([]byte, error) {
		gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: []byte("bench"), Epoch: 1, TreeHash: treeHash, ConfirmedTranscriptHash: make([]byte, 32)}
		return gc.Marshal()
	}
	benchTrees[n] = bt
	return bt
}

// BenchmarkTreeHashLeafChange measures the root tree hash after one leaf
// changes, which the cache reduces to the leaf's direct path.
func BenchmarkTreeHashLeafChange(b *testing.B) {
	for _, n := range []int{128, 1000, 10000} {
		b.Run(fmt.Sprintf("leaves=%d", n), func(b *testing.B) {
			bt := getBenchTree(b, n)
			tree := bt.tree.clone()
			nodes := []*Node{tree.nodes[10], tree.nodes[12]}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tree.set(10, nodes[i&1])
				i++
				if _, err := tree.rootHash(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTreeHashFull measures the root tree hash computed from scratch,
// the cost that the cache avoids.
func BenchmarkTreeHashFull(b *testing.B) {
	for _, n := range []int{128, 1000, 10000} {
		b.Run(fmt.Sprintf("leaves=%d", n), func(b *testing.B) {
			bt := getBenchTree(b, n)
			tree := bt.tree.clone()
			b.ReportAllocs()
			for b.Loop() {
				clear(tree.hashes)
				if _, err := tree.rootHash(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdatePathCreate measures a commit's UpdatePath from leaf 0,
// including the copy of the tree the group stages it on.
func BenchmarkUpdatePathCreate(b *testing.B) {
	for _, n := range []int{2, 128, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			bt := getBenchTree(b, n)
			b.ReportAllocs()
			for b.Loop() {
				staged := bt.tree.clone()
				if _, err := staged.createUpdatePath(0, bt.leaf0, bt.sig, []byte("bench"), nil, bt.gctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdatePathProcess measures processing leaf 0's UpdatePath at
// leaf 1, the receiver that decrypts lowest and derives the whole path,
// including the copy of the tree.
func BenchmarkUpdatePathProcess(b *testing.B) {
	for _, n := range []int{2, 128, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			bt := getBenchTree(b, n)
			created, err := bt.tree.clone().createUpdatePath(0, bt.leaf0, bt.sig, []byte("bench"), nil, bt.gctx)
			if err != nil {
				b.Fatal(err)
			}
			priv := newTreePrivateKeys(1, bt.keys[LeafIndex(1).node()])
			b.ReportAllocs()
			for b.Loop() {
				staged := bt.tree.clone()
				if _, err := staged.processUpdatePath(0, created.Path, []byte("bench"), nil, priv, bt.gctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
