package mls

import (
	"bytes"
	"testing"
)

// fuzzGroup builds a live three-member group and returns the saved state of
// member a, its signature key, and real messages of the epoch from the
// other two that a has not yet processed.
func fuzzGroup(f *testing.F) (state []byte, sigKey *SignaturePrivateKey, seeds [][]byte) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	for _, private := range []bool{false, true} {
		cfg := testConfig()
		cfg.UsePrivateHandshake = private
		alice, bob, carol := newTestClient(f, cs, "alice"), newTestClient(f, cs, "bob"), newTestClient(f, cs, "carol")
		kpA, secA := alice.keyPackage(f)
		a, err := NewGroup(cfg, []byte("fuzz"), kpA, secA, alice.sigKey, nil)
		if err != nil {
			f.Fatal(err)
		}
		kpB, secB := bob.keyPackage(f)
		kpC, secC := carol.keyPackage(f)
		out, err := a.Commit(CommitOptions{Add: []*KeyPackage{kpB, kpC}})
		if err != nil {
			f.Fatal(err)
		}
		if _, err := a.MergePendingCommit(); err != nil {
			f.Fatal(err)
		}
		b, err := JoinFromWelcome(cfg, out.Welcome.Welcome, kpB, secB, bob.sigKey, nil)
		if err != nil {
			f.Fatal(err)
		}
		c, err := JoinFromWelcome(cfg, out.Welcome.Welcome, kpC, secC, carol.sigKey, nil)
		if err != nil {
			f.Fatal(err)
		}
		// Warm up a's ratchets for b and c, so that processing a forged
		// message cannot change a's state by deriving them.
		// (Deriving a leaf's ratchets derives both of them.)
		for _, g := range []*Group{b, c} {
			m, err := g.Encrypt([]byte("warm"), nil)
			if err != nil {
				f.Fatal(err)
			}
			if _, err := a.Process(m); err != nil {
				f.Fatal(err)
			}
		}
		add := func(m *MLSMessage, err error) {
			if err != nil {
				f.Fatal(err)
			}
			data, err := m.Marshal()
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, data)
		}
		add(b.Encrypt([]byte("hello"), []byte("ad")))
		add(c.ProposeUpdate())
		add(b.ProposeRemove(c.OwnLeaf()))
		out, err = c.Commit(CommitOptions{ForcePath: true})
		if err != nil {
			f.Fatal(err)
		}
		add(out.Commit, nil)
		if !private {
			continue
		}
		if state, err = a.MarshalState(); err != nil {
			f.Fatal(err)
		}
		sigKey = alice.sigKey
	}
	return state, sigKey, seeds
}

// FuzzGroupProcess processes arbitrary messages in a live group: it must
// never panic, and a message it refuses must leave the state unchanged.
func FuzzGroupProcess(f *testing.F) {
	state, sigKey, seeds := fuzzGroup(f)
	for _, s := range seeds {
		f.Add(s)
	}
	cfg := testConfig()
	cfg.UsePrivateHandshake = true
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := RestoreGroup(cfg, state, sigKey)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := UnmarshalMLSMessage(data)
		if err != nil {
			return
		}
		if _, err := g.Process(msg); err == nil {
			return
		}
		after, err := g.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, state) {
			t.Fatal("a refused message changed the group state")
		}
	})
}
