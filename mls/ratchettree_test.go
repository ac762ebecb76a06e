package mls

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// testMember is one member of an in-process test group.
type testMember struct {
	sig  *SignaturePrivateKey
	enc  *HPKEPrivateKey
	leaf *LeafNode
}

// newTestMember makes a member with fresh keys and a signed key_package
// leaf node.
func newTestMember(t testing.TB, cs CipherSuite, name string) *testMember {
	t.Helper()
	sig, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := cs.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf := &LeafNode{
		EncryptionKey: enc.PublicKey(),
		SignatureKey:  sig.PublicKey(),
		Credential:    Credential{Type: CredentialBasic, Identity: []byte(name)},
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{ProtocolMLS10},
			CipherSuites: []CipherSuite{cs},
			Extensions:   []ExtensionType{},
			Proposals:    []ProposalType{},
			Credentials:  []CredentialType{CredentialBasic},
		},
		Source:     LeafNodeSourceKeyPackage,
		Lifetime:   &Lifetime{NotBefore: 0, NotAfter: 1 << 62},
		Extensions: Extensions{},
	}
	if err := leaf.sign(cs, sig, nil, 0); err != nil {
		t.Fatal(err)
	}
	return &testMember{sig: sig, enc: enc, leaf: leaf}
}

// cheapLeaf is a leaf node with a deterministic encryption key, unsigned,
// for tests that only look at the tree's shape and hashes.
func cheapLeaf(i int) *LeafNode {
	key := binary.BigEndian.AppendUint32(make([]byte, 28), uint32(i))
	return &LeafNode{
		EncryptionKey: key,
		SignatureKey:  key,
		Credential:    Credential{Type: CredentialBasic, Identity: []byte(fmt.Sprint(i))},
		Source:        LeafNodeSourceKeyPackage,
		Lifetime:      &Lifetime{},
	}
}

func emptyTree(t testing.TB, cs CipherSuite, first *LeafNode) *ratchetTree {
	t.Helper()
	tree, err := newRatchetTree(cs, RatchetTree{{Type: NodeTypeLeaf, Leaf: first}})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func nextPow2(n uint32) uint32 {
	p := uint32(1)
	for p < n {
		p *= 2
	}
	return p
}

func TestTreeAddRemoveTruncate(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	for n := 1; n <= 70; n++ {
		tree := emptyTree(t, cs, cheapLeaf(0))
		for i := 1; i < n; i++ {
			l, err := tree.addLeaf(cheapLeaf(i))
			if err != nil {
				t.Fatal(err)
			}
			if l != LeafIndex(i) {
				t.Fatalf("n=%d: add %d went to leaf %d", n, i, l)
			}
		}
		if got, want := tree.leafCount(), nextPow2(uint32(n)); got != want {
			t.Fatalf("n=%d: leaf count %d, want %d", n, got, want)
		}
		// Removing a middle leaf leaves a hole that the next add fills.
		if n > 2 {
			mid := LeafIndex(n / 2)
			if err := tree.removeLeaf(mid); err != nil {
				t.Fatal(err)
			}
			if got, want := tree.leafCount(), nextPow2(uint32(n)); got != want {
				t.Fatalf("n=%d: leaf count %d after removing a middle leaf, want %d", n, got, want)
			}
			if l, err := tree.addLeaf(cheapLeaf(1000)); err != nil || l != mid {
				t.Fatalf("n=%d: add after removing %d went to %d (%v)", n, mid, l, err)
			}
		}
		// Removing from the right truncates to the rightmost non-blank leaf.
		for last := n - 1; last > 0; last-- {
			if err := tree.removeLeaf(LeafIndex(last)); err != nil {
				t.Fatal(err)
			}
			if got, want := tree.leafCount(), nextPow2(uint32(last)); got != want {
				t.Fatalf("n=%d: leaf count %d after removing leaf %d, want %d", n, got, want, last)
			}
		}
		if err := tree.removeLeaf(LeafIndex(n)); err == nil {
			t.Fatalf("n=%d: removing a leaf outside the tree succeeded", n)
		}
	}
}

func TestTreeAddUnmergedLeaves(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	tree := emptyTree(t, cs, cheapLeaf(0))
	for i := 1; i < 4; i++ {
		if _, err := tree.addLeaf(cheapLeaf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tree.removeLeaf(2); err != nil {
		t.Fatal(err)
	}
	// Give the root and node 1 keys, as a commit from leaf 0 would.
	tree.set(3, &Node{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte("r"), UnmergedLeaves: []LeafIndex{}}})
	tree.set(1, &Node{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte("p"), UnmergedLeaves: []LeafIndex{}}})
	before := tree.clone()
	if l, err := tree.addLeaf(cheapLeaf(9)); err != nil || l != 2 {
		t.Fatalf("add went to %d (%v), want 2", l, err)
	}
	if got := tree.parentNode(3).UnmergedLeaves; len(got) != 1 || got[0] != 2 {
		t.Errorf("root unmerged leaves %v, want [2]", got)
	}
	if got := tree.parentNode(1).UnmergedLeaves; len(got) != 0 {
		t.Errorf("node 1 unmerged leaves %v, want none", got)
	}
	if got, want := tree.resolution(3), []nodeIndex{3, 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resolution of the root %v, want %v", got, want)
	}
	if got, want := tree.resolution(5), []nodeIndex{4, 6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resolution of node 5 %v, want %v", got, want)
	}
	// The clone taken before is unchanged.
	if before.leaf(2) != nil || len(before.parentNode(3).UnmergedLeaves) != 0 {
		t.Errorf("changes to the tree reached its clone")
	}
}

// checkHashesFresh compares every cached tree hash with a computation on a
// copy of the tree that has no cache.
func checkHashesFresh(t *testing.T, tree *ratchetTree) {
	t.Helper()
	root, err := tree.rootHash()
	if err != nil {
		t.Fatal(err)
	}
	wire, err := tree.wire()
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := newRatchetTree(tree.suite, wire)
	if err != nil {
		t.Fatal(err)
	}
	// The wire form drops trailing blanks; pad to the same size.
	fresh.resize(tree.leafCount())
	want, err := fresh.rootHash()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, want) {
		t.Fatalf("cached root tree hash %x, from scratch %x", root, want)
	}
	for x := range tree.nodes {
		if tree.hashes[x] != nil && !bytes.Equal(tree.hashes[x], fresh.hashes[x]) {
			t.Fatalf("cached tree hash of node %d differs from a fresh computation", x)
		}
	}
}

func TestTreeHashCache(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	rng := rand.New(rand.NewPCG(1, 2))
	tree := emptyTree(t, cs, cheapLeaf(0))
	next := 1
	for step := range 400 {
		var members []LeafIndex
		_ = tree.leafNodes(func(l LeafIndex, _ *LeafNode) error { members = append(members, l); return nil })
		pick := members[rng.IntN(len(members))]
		switch op := rng.IntN(4); {
		case op == 0 && len(members) > 1:
			if err := tree.removeLeaf(pick); err != nil {
				t.Fatal(err)
			}
		case op == 1:
			if err := tree.updateLeaf(pick, cheapLeaf(next)); err != nil {
				t.Fatal(err)
			}
			next++
		case op == 2:
			// A path: fill the filtered direct path with keys.
			fdp := tree.filteredDirectPath(pick)
			pubs := make([][]byte, len(fdp))
			for i := range pubs {
				pubs[i] = []byte(fmt.Sprint("key", step, i))
			}
			hashes, _, err := tree.pathParentHashes(pick, fdp, pubs)
			if err != nil {
				t.Fatal(err)
			}
			tree.mergePath(pick, fdp, pubs, hashes)
		default:
			if _, err := tree.addLeaf(cheapLeaf(next)); err != nil {
				t.Fatal(err)
			}
			next++
		}
		if step%7 == 0 {
			checkHashesFresh(t, tree)
		}
	}
	checkHashesFresh(t, tree)
}

// testGroup is a tree with every member's keys, for TreeKEM round trips.
type testGroup struct {
	cs      CipherSuite
	groupID []byte
	tree    *ratchetTree
	members map[LeafIndex]*testMember
	privs   map[LeafIndex]*treePrivateKeys
}

func (g *testGroup) groupContext(treeHash []byte) ([]byte, error) {
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: g.cs, GroupID: g.groupID, Epoch: 7, TreeHash: treeHash, ConfirmedTranscriptHash: []byte("cth")}
	return gc.Marshal()
}

func newTestGroup(t testing.TB, cs CipherSuite, n int) *testGroup {
	t.Helper()
	g := &testGroup{cs: cs, groupID: []byte("group"), members: map[LeafIndex]*testMember{}, privs: map[LeafIndex]*treePrivateKeys{}}
	m := newTestMember(t, cs, "0")
	g.tree = emptyTree(t, cs, m.leaf)
	g.members[0], g.privs[0] = m, newTreePrivateKeys(0, m.enc)
	for i := 1; i < n; i++ {
		m := newTestMember(t, cs, fmt.Sprint(i))
		l, err := g.tree.addLeaf(m.leaf)
		if err != nil {
			t.Fatal(err)
		}
		g.members[l], g.privs[l] = m, newTreePrivateKeys(l, m.enc)
	}
	return g
}

// commit has the member at from commit with an UpdatePath, after adding the
// members in add; every other existing member processes it, and all must
// agree on the commit secret and tree hash. New members join with the path
// secret a Welcome would give them.
func (g *testGroup) commit(t *testing.T, from LeafIndex, add int) {
	t.Helper()
	staged := g.tree.clone()
	var added []LeafIndex
	newMembers := map[LeafIndex]*testMember{}
	for i := range add {
		m := newTestMember(t, g.cs, fmt.Sprint("new", i))
		l, err := staged.addLeaf(m.leaf)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, l)
		newMembers[l] = m
	}
	preCommit := staged.clone()
	created, err := staged.createUpdatePath(from, g.members[from].leaf, g.members[from].sig, g.groupID, added, g.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	if err := staged.validate(g.groupID, nil); err != nil {
		t.Fatalf("tree after commit from %d is not valid: %v", from, err)
	}
	wantHash, err := staged.rootHash()
	if err != nil {
		t.Fatal(err)
	}
	for l, priv := range g.privs {
		if l == from {
			continue
		}
		mine := preCommit.clone()
		got, err := mine.processUpdatePath(from, created.Path, g.groupID, added, priv, g.groupContext)
		if err != nil {
			t.Fatalf("leaf %d processing commit from %d: %v", l, from, err)
		}
		if !bytes.Equal(got.CommitSecret, created.CommitSecret) {
			t.Fatalf("leaf %d derived another commit secret", l)
		}
		h, err := mine.rootHash()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(h, wantHash) {
			t.Fatalf("leaf %d has tree hash %x, committer %x", l, h, wantHash)
		}
		g.privs[l] = got.Keys
	}
	for l, m := range newMembers {
		k := newTreePrivateKeys(l, m.enc)
		x, ps, err := created.pathSecretFor(staged, l)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.addPathSecret(staged, x, ps); err != nil {
			t.Fatalf("new member %d: %v", l, err)
		}
		g.members[l], g.privs[l] = m, k
	}
	g.privs[from] = created.Keys
	g.tree = staged
}

func TestUpdatePathRoundTrip(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			g := newTestGroup(t, cs, 5)
			g.commit(t, 0, 0)
			g.commit(t, 3, 2) // adds with unmerged leaves and excluded new members
			g.commit(t, 6, 0)
			if err := g.tree.removeLeaf(1); err != nil {
				t.Fatal(err)
			}
			delete(g.members, 1)
			delete(g.privs, 1)
			for _, k := range g.privs {
				k.prune(g.tree)
			}
			g.commit(t, 4, 1)
			g.commit(t, 2, 0)
		})
	}
}

func TestUpdatePathTampered(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	g := newTestGroup(t, cs, 6)
	g.commit(t, 0, 0)
	from := LeafIndex(5)
	var created *createdPath
	fresh := func() (*ratchetTree, *UpdatePath) {
		staged := g.tree.clone()
		var err error
		created, err = staged.createUpdatePath(from, g.members[from].leaf, g.members[from].sig, g.groupID, nil, g.groupContext)
		if err != nil {
			t.Fatal(err)
		}
		return g.tree.clone(), created.Path
	}
	// reencrypt encrypts the path secrets again under the GroupContext of
	// the tampered path, as a malicious committer would.
	reencrypt := func(tree *ratchetTree, p *UpdatePath) {
		merged := tree.clone()
		if err := merged.applyUpdatePath(from, p, g.groupID); err != nil {
			t.Fatal(err)
		}
		h, err := merged.rootHash()
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := g.groupContext(h)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range merged.filteredDirectPath(from) {
			for j, r := range merged.resolution(copathChild(x, from.node())) {
				if p.Nodes[i].EncryptedPathSecret[j], err = cs.EncryptWithLabel(merged.encryptionKey(r), "UpdatePathNode", ctx, created.pathSecrets[x]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	resign := func(tree *ratchetTree, p *UpdatePath) {
		fdp := tree.filteredDirectPath(from)
		pubs := make([][]byte, len(p.Nodes))
		for i := range p.Nodes {
			pubs[i] = p.Nodes[i].EncryptionKey
		}
		_, leafHash, err := tree.pathParentHashes(from, fdp, pubs)
		if err != nil {
			t.Fatal(err)
		}
		p.LeafNode.ParentHash = leafHash
		if err := p.LeafNode.sign(cs, g.members[from].sig, g.groupID, from); err != nil {
			t.Fatal(err)
		}
	}
	other, err := cs.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(tree *ratchetTree, p *UpdatePath)
		want   string
	}{
		{"public key with consistent parent hash", func(tree *ratchetTree, p *UpdatePath) {
			p.Nodes[len(p.Nodes)-1].EncryptionKey = other.PublicKey()
			resign(tree, p)
			reencrypt(tree, p)
		}, "derives a public key that differs"},
		{"public key", func(tree *ratchetTree, p *UpdatePath) {
			p.Nodes[0].EncryptionKey = other.PublicKey()
		}, "has parent hash"},
		{"parent hash", func(tree *ratchetTree, p *UpdatePath) {
			p.LeafNode.ParentHash[0] ^= 1
			if err := p.LeafNode.sign(cs, g.members[from].sig, g.groupID, from); err != nil {
				t.Fatal(err)
			}
		}, "has parent hash"},
		{"leaf signature", func(tree *ratchetTree, p *UpdatePath) {
			p.LeafNode.Signature[0] ^= 1
		}, "signature"},
		{"reused signature key", func(tree *ratchetTree, p *UpdatePath) {
			p.LeafNode.SignatureKey = tree.leaf(1).SignatureKey
		}, "reuses the signature key of leaf 1"},
		{"reused encryption key", func(tree *ratchetTree, p *UpdatePath) {
			p.LeafNode.EncryptionKey = tree.leaf(2).EncryptionKey
		}, "reuses the encryption key of leaf 2"},
		{"node count", func(tree *ratchetTree, p *UpdatePath) {
			p.Nodes = p.Nodes[1:]
		}, "filtered direct path"},
		{"leaf source", func(tree *ratchetTree, p *UpdatePath) {
			p.LeafNode.Source = LeafNodeSourceUpdate
		}, "want commit"},
		{"ciphertext", func(tree *ratchetTree, p *UpdatePath) {
			p.Nodes[len(p.Nodes)-1].EncryptedPathSecret[0].Ciphertext[0] ^= 1
		}, "decryption failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, p := fresh()
			tc.tamper(tree, p)
			_, err := tree.processUpdatePath(from, p, g.groupID, nil, g.privs[0], g.groupContext)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "mls: ") {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestTreeValidateRejects(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	g := newTestGroup(t, cs, 5)
	g.commit(t, 0, 0)
	g.commit(t, 4, 1)
	if err := g.tree.validate(g.groupID, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(tree *ratchetTree)
		want   string
	}{
		{"parent hash", func(tree *ratchetTree) {
			p := cloneParentNode(tree.parentNode(3))
			p.ParentHash = []byte("x")
			tree.set(3, &Node{Type: NodeTypeParent, Parent: p})
		}, "parent-hash valid"},
		{"duplicate encryption key", func(tree *ratchetTree) {
			l, _ := cloneLeafNode(tree.leaf(1))
			l.EncryptionKey = tree.leaf(2).EncryptionKey
			tree.set(2, &Node{Type: NodeTypeLeaf, Leaf: l})
		}, "same encryption key"},
		{"unmerged leaf missing below", func(tree *ratchetTree) {
			r := root(tree.leafCount())
			p := cloneParentNode(tree.parentNode(r))
			p.UnmergedLeaves = append(p.UnmergedLeaves, 3)
			tree.set(r, &Node{Type: NodeTypeParent, Parent: p})
		}, "between them does not"},
		{"leaf signature", func(tree *ratchetTree) {
			l, _ := cloneLeafNode(tree.leaf(2))
			l.Signature[0] ^= 1
			tree.set(LeafIndex(2).node(), &Node{Type: NodeTypeLeaf, Leaf: l})
		}, "leaf 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := g.tree.clone()
			tc.tamper(tree)
			err := tree.validate(g.groupID, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestTreePrivateKeysBytes(t *testing.T) {
	for _, cs := range CipherSuites() {
		g := newTestGroup(t, cs, 3)
		g.commit(t, 0, 0)
		k := g.privs[0]
		data, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseTreePrivateKeys(cs, data)
		if err != nil {
			t.Fatalf("%v: %v", cs, err)
		}
		if back.Leaf != k.Leaf || len(back.keys) != len(k.keys) {
			t.Fatalf("%v: round trip changed the keys", cs)
		}
		for x, key := range k.keys {
			if !bytes.Equal(back.key(x).pub, key.pub) {
				t.Fatalf("%v: key of node %d changed", cs, x)
			}
		}
		if _, err := parseTreePrivateKeys(cs, append(data, 0)); err == nil {
			t.Fatalf("%v: trailing byte accepted", cs)
		}
	}
}

func TestRatchetTreeWireRoundTrip(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	g := newTestGroup(t, cs, 7)
	g.commit(t, 2, 0)
	wire, err := g.tree.wire()
	if err != nil {
		t.Fatal(err)
	}
	data, err := wire.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseVectorTree(cs, data)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := g.tree.rootHash()
	h2, _ := back.rootHash()
	if !bytes.Equal(h1, h2) || back.leafCount() != g.tree.leafCount() {
		t.Fatalf("tree changed in a wire round trip")
	}
	bad := RatchetTree{{Type: NodeTypeParent, Parent: &ParentNode{}}}
	if _, err := newRatchetTree(cs, bad); err == nil {
		t.Fatalf("parent node at a leaf position accepted")
	}
}
