package mls

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// benchGroup is a group of n members built directly (not by n commits
// through the API): every member's leaf comes from a KeyPackage, and every
// other member (even leaves, left to right) commits once with a path so
// that the tree is full, as in a group that has been active for a while.
// The group states of two members are kept: the committer at leaf 0, and
// the receiver, the last member to have committed, who holds the private
// keys of its whole direct path.
type benchGroup struct {
	cfg        Config
	committer  []byte // MarshalState of the committer
	receiver   []byte
	cSig, rSig *SignaturePrivateKey
	joinerKP   *KeyPackage
	joinerSec  *KeyPackageSecrets
	joinerSig  *SignaturePrivateKey
	n          int
}

var (
	benchGroupsMu sync.Mutex
	benchGroups   = map[int]*benchGroup{}
)

func getBenchGroup(b *testing.B, n int) *benchGroup {
	b.Helper()
	benchGroupsMu.Lock()
	defer benchGroupsMu.Unlock()
	if bg := benchGroups[n]; bg != nil {
		return bg
	}
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := testConfig()
	groupID := []byte("bench")
	sigs := make([]*SignaturePrivateKey, n)
	encKeys := make([]*HPKEPrivateKey, n)
	tree := &ratchetTree{suite: cs}
	tree.resize(nextPow2(uint32(n)))
	for i := range n {
		sk, err := cs.GenerateSignatureKey()
		if err != nil {
			b.Fatal(err)
		}
		kp, sec, err := NewKeyPackage(cs, Credential{Type: CredentialBasic, Identity: []byte(fmt.Sprintf("member-%d", i))}, sk, KeyPackageOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sigs[i], encKeys[i] = sk, sec.EncryptionKey
		if err := tree.setLeaf(LeafIndex(i), &kp.LeafNode); err != nil {
			b.Fatal(err)
		}
	}
	privs := map[LeafIndex]*treePrivateKeys{}
	last := LeafIndex(0)
	for i := 0; i < n; i += 2 {
		l := LeafIndex(i)
		privs[l] = benchMergePath(b, tree, l, sigs[i], groupID)
		last = l
	}
	if n == 2 {
		// Two members: the receiver is leaf 1, which has not committed.
		last = 1
		privs[1] = newTreePrivateKeys(1, encKeys[1])
	}
	treeHash, err := tree.rootHash()
	if err != nil {
		b.Fatal(err)
	}
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: groupID, Epoch: 7, TreeHash: treeHash, ConfirmedTranscriptHash: make([]byte, 32), Extensions: Extensions{}}
	gcBytes, err := gc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	init, err := newRandomInitSecret(cs)
	if err != nil {
		b.Fatal(err)
	}
	joiner, err := init.joiner(nil, gcBytes)
	if err != nil {
		b.Fatal(err)
	}
	es, err := joiner.withPSK(nil).epoch(gcBytes)
	if err != nil {
		b.Fatal(err)
	}
	tag := cs.confirmationTag(es.confirmationKey(), gc.ConfirmedTranscriptHash)
	mk := func(l LeafIndex) []byte {
		g := &Group{cfg: cfg, cs: cs, sigKey: sigs[l], gc: gc, gcBytes: gcBytes, tree: tree.clone(), priv: privs[l], secrets: es,
			confirmationTag: tag, interim: cs.interimTranscriptHash(gc.ConfirmedTranscriptHash, tag), resumption: map[uint64][]byte{}}
		g.startEpoch()
		state, err := g.MarshalState()
		if err != nil {
			b.Fatal(err)
		}
		return state
	}
	bg := &benchGroup{cfg: cfg, committer: mk(0), receiver: mk(last), cSig: sigs[0], rSig: sigs[last], n: n}
	if bg.joinerSig, err = cs.GenerateSignatureKey(); err != nil {
		b.Fatal(err)
	}
	if bg.joinerKP, bg.joinerSec, err = NewKeyPackage(cs, Credential{Type: CredentialBasic, Identity: []byte("joiner")}, bg.joinerSig, KeyPackageOptions{}); err != nil {
		b.Fatal(err)
	}
	benchGroups[n] = bg
	return bg
}

// benchMergePath does to the public tree what a commit with a path from l
// does (fresh keys on the filtered direct path, parent hashes, a re-signed
// leaf) without encrypting the path secrets, which nobody decrypts while
// the benchmark group is built; encrypting them would make building a
// large group quadratic. It returns l's private keys.
func benchMergePath(b *testing.B, t *ratchetTree, l LeafIndex, sig *SignaturePrivateKey, groupID []byte) *treePrivateKeys {
	cs := t.suite
	leafKey, err := cs.GenerateHPKEKey()
	if err != nil {
		b.Fatal(err)
	}
	keys := newTreePrivateKeys(l, leafKey)
	fdp := t.filteredDirectPath(l)
	pubs := make([][]byte, len(fdp))
	for i, x := range fdp {
		k, err := cs.GenerateHPKEKey()
		if err != nil {
			b.Fatal(err)
		}
		keys.keys[x], pubs[i] = k, k.PublicKey()
	}
	hashes, leafHash, err := t.pathParentHashes(l, fdp, pubs)
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := cloneLeafNode(t.leaf(l))
	if err != nil {
		b.Fatal(err)
	}
	leaf.EncryptionKey, leaf.Source, leaf.Lifetime, leaf.ParentHash = leafKey.PublicKey(), LeafNodeSourceCommit, nil, leafHash
	if err := leaf.sign(cs, sig, groupID, l); err != nil {
		b.Fatal(err)
	}
	t.mergePath(l, fdp, pubs, hashes)
	t.set(l.node(), &Node{Type: NodeTypeLeaf, Leaf: leaf})
	return keys
}

func (bg *benchGroup) restore(b *testing.B, committer bool) *Group {
	b.Helper()
	state, sig := bg.receiver, bg.rSig
	if committer {
		state, sig = bg.committer, bg.cSig
	}
	g, err := RestoreGroup(bg.cfg, state, sig)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

var benchSizes = []int{2, 128, 1000, 10000}

func forSizes(b *testing.B, f func(b *testing.B, bg *benchGroup)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			bg := getBenchGroup(b, n)
			b.ReportAllocs()
			f(b, bg)
		})
	}
}

// BenchmarkCommit creates an empty commit with a path.
func BenchmarkCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		c := bg.restore(b, true)
		for b.Loop() {
			if _, err := c.Commit(CommitOptions{}); err != nil {
				b.Fatal(err)
			}
			c.DiscardPendingCommit()
		}
	})
}

// BenchmarkProcessCommit processes an empty commit with a path.
func BenchmarkProcessCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		c := bg.restore(b, true)
		out, err := c.Commit(CommitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		data, err := out.Commit.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			b.StopTimer()
			r := bg.restore(b, false)
			// A live group's tree hashes are cached; a restored one's
			// are computed on first use.
			if _, err := r.tree.rootHash(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			msg, err := UnmarshalMLSMessage(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Process(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAddMember creates a commit adding one member, with its Welcome.
func BenchmarkAddMember(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		c := bg.restore(b, true)
		for b.Loop() {
			if _, err := c.Commit(CommitOptions{Add: []*KeyPackage{bg.joinerKP}}); err != nil {
				b.Fatal(err)
			}
			c.DiscardPendingCommit()
		}
	})
}

// BenchmarkRemoveMember creates a commit removing one member.
func BenchmarkRemoveMember(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		c := bg.restore(b, true)
		for b.Loop() {
			if _, err := c.Commit(CommitOptions{Remove: []LeafIndex{1}}); err != nil {
				b.Fatal(err)
			}
			c.DiscardPendingCommit()
		}
	})
}

// BenchmarkJoinFromWelcome joins by a Welcome carrying the ratchet tree,
// validating the whole tree.
func BenchmarkJoinFromWelcome(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		c := bg.restore(b, true)
		out, err := c.Commit(CommitOptions{Add: []*KeyPackage{bg.joinerKP}})
		if err != nil {
			b.Fatal(err)
		}
		data, err := out.Welcome.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			msg, err := UnmarshalMLSMessage(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := JoinFromWelcome(bg.cfg, msg.Welcome, bg.joinerKP, bg.joinerSec, bg.joinerSig, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkApplicationMessage encrypts a 1 KiB application message and
// decrypts it at another member.
func BenchmarkApplicationMessage(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		c, r := bg.restore(b, true), bg.restore(b, false)
		data := make([]byte, 1024)
		rand.Read(data)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			m, err := c.Encrypt(data, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Process(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkState saves and restores a member's state.
func BenchmarkState(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		r := bg.restore(b, false)
		for b.Loop() {
			state, err := r.MarshalState()
			if err != nil {
				b.Fatal(err)
			}
			if r, err = RestoreGroup(bg.cfg, state, bg.rSig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupMemory reports the memory one group holds: the size of its
// saved state and the live heap of a restored group (runtime.MemStats
// delta over several copies). Its time per operation is meaningless.
func BenchmarkGroupMemory(b *testing.B) {
	forSizes(b, func(b *testing.B, bg *benchGroup) {
		const copies = 8
		for b.Loop() {
			groups := make([]*Group, copies)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range groups {
				groups[i] = bg.restore(b, false)
				// Hash the tree once, as a live group has.
				if _, err := groups[i].tree.rootHash(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/copies, "heap-bytes/group")
			b.ReportMetric(float64(len(bg.receiver)), "state-bytes/group")
			runtime.KeepAlive(groups)
		}
	})
}
