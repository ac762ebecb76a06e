package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// testClient is one client of an in-process group test.
type testClient struct {
	name   string
	cs     CipherSuite
	sigKey *SignaturePrivateKey
	cred   Credential
	g      *Group
}

func testConfig() Config {
	return Config{ValidateCredential: AcceptAnyCredential}
}

func newTestClient(t testing.TB, cs CipherSuite, name string) *testClient {
	t.Helper()
	sk, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{name: name, cs: cs, sigKey: sk, cred: Credential{Type: CredentialBasic, Identity: []byte(name)}}
}

func (c *testClient) keyPackage(t testing.TB) (*KeyPackage, *KeyPackageSecrets) {
	t.Helper()
	kp, sec, err := NewKeyPackage(c.cs, c.cred, c.sigKey, KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kp, sec
}

// newJoinedGroups creates group "g" with cfg and the initial extensions exts:
// its first member creates it and adds the others in one commit, which
// they join by Welcome. It returns the members' groups in order.
func newJoinedGroups(t testing.TB, cfg Config, exts Extensions, members ...*testClient) []*Group {
	t.Helper()
	creator := members[0]
	kp, sec := creator.keyPackage(t)
	g, err := NewGroup(cfg, []byte("g"), kp, sec, creator.sigKey, exts)
	if err != nil {
		t.Fatal(err)
	}
	groups := []*Group{g}
	var kps []*KeyPackage
	var secs []*KeyPackageSecrets
	for _, m := range members[1:] {
		kp, sec := m.keyPackage(t)
		kps, secs = append(kps, kp), append(secs, sec)
	}
	out, err := g.Commit(CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	g.MergePendingCommit()
	for i, m := range members[1:] {
		joined, err := JoinFromWelcome(cfg, out.Welcome.Welcome, kps[i], secs[i], m.sigKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, joined)
	}
	return groups
}

// roundTrip encodes and decodes a message, as the relay would carry it.
func roundTrip(t testing.TB, m *MLSMessage) *MLSMessage {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalMLSMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAgree fails unless every group is at the same epoch with the same
// epoch authenticator and tree hash.
func checkAgree(t testing.TB, groups ...*Group) {
	t.Helper()
	for _, g := range groups[1:] {
		if g.Epoch() != groups[0].Epoch() {
			t.Fatalf("epochs differ: %d and %d", g.Epoch(), groups[0].Epoch())
		}
		if !bytes.Equal(g.EpochAuthenticator(), groups[0].EpochAuthenticator()) {
			t.Fatalf("epoch %d: epoch authenticators differ", g.Epoch())
		}
		if !bytes.Equal(g.TreeHash(), groups[0].TreeHash()) {
			t.Fatalf("epoch %d: tree hashes differ", g.Epoch())
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(fmt.Sprint(cs), func(t *testing.T) {
			t.Parallel()
			for _, private := range []bool{false, true} {
				testGroupLifecycle(t, cs, private)
			}
		})
	}
}

func testGroupLifecycle(t *testing.T, cs CipherSuite, private bool) {
	cfg := testConfig()
	cfg.UsePrivateHandshake = private
	cfg.PaddingBlock = 32
	alice, bob, carol := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob"), newTestClient(t, cs, "carol")
	kpA, secA := alice.keyPackage(t)
	a, err := NewGroup(cfg, []byte("group"), kpA, secA, alice.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Alice adds Bob and Carol; they join by Welcome.
	kpB, secB := bob.keyPackage(t)
	kpC, secC := carol.keyPackage(t)
	out, err := a.Commit(CommitOptions{Add: []*KeyPackage{kpB, kpC}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Process(roundTrip(t, out.Commit)); err != nil {
		t.Fatalf("own commit echoed: %v", err)
	}
	w := roundTrip(t, out.Welcome).Welcome
	b, err := JoinFromWelcome(cfg, w, kpB, secB, bob.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := JoinFromWelcome(cfg, w, kpC, secC, carol.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkAgree(t, a, b, c)

	// Application data.
	m, err := b.Encrypt([]byte("hi"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, c} {
		p, err := g.Process(roundTrip(t, m))
		if err != nil {
			t.Fatal(err)
		}
		if string(p.ApplicationData) != "hi" || string(p.AuthenticatedData) != "ad" || p.Sender.Leaf != b.OwnLeaf() {
			t.Fatalf("got %+v", p)
		}
	}

	// Bob proposes an update; Carol commits it without being forced to a
	// path... an Update requires one.
	up, err := b.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, c} {
		if _, err := g.Process(roundTrip(t, up)); err != nil {
			t.Fatal(err)
		}
	}
	out, err = c.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, b} {
		if _, err := g.Process(roundTrip(t, out.Commit)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	checkAgree(t, a, b, c)

	// Commit without path (add only) and a late application message
	// from the previous epoch.
	late, err := a.Encrypt([]byte("late"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dave := newTestClient(t, cs, "dave")
	kpD, secD := dave.keyPackage(t)
	out, err = b.Commit(CommitOptions{Add: []*KeyPackage{kpD}, OmitRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if out.Commit.PublicMessage != nil && out.Commit.PublicMessage.Content.Commit.Path != nil {
		t.Fatal("add-only commit has a path")
	}
	tree, err := b.RatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	_ = tree
	for _, g := range []*Group{a, c} {
		if _, err := g.Process(roundTrip(t, out.Commit)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Process(roundTrip(t, out.Commit)); err != nil {
		t.Fatal(err)
	}
	treeAfter, err := a.RatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	d, err := JoinFromWelcome(cfg, roundTrip(t, out.Welcome).Welcome, kpD, secD, dave.sigKey, treeAfter)
	if err != nil {
		t.Fatal(err)
	}
	checkAgree(t, a, b, c, d)
	if p, err := c.Process(roundTrip(t, late)); err != nil || string(p.ApplicationData) != "late" {
		t.Fatalf("late message: %v", err)
	}

	// A handshake message of an old epoch is refused.
	var epochErr *EpochError
	if _, err := c.Process(roundTrip(t, up)); !errors.As(err, &epochErr) && !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("old proposal: got %v, want an EpochError", err)
	}

	// Dave removes Carol; Carol sees she is removed and cannot read on.
	out, err = d.Commit(CommitOptions{Remove: []LeafIndex{c.OwnLeaf()}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, b} {
		p, err := g.Process(roundTrip(t, out.Commit))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Commit.Removed) != 1 || string(p.Commit.Removed[0].Credential.Identity) != "carol" {
			t.Fatalf("removed: %+v", p.Commit.Removed)
		}
	}
	p, err := c.Process(roundTrip(t, out.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Commit.RemovedSelf {
		t.Fatal("carol not told she was removed")
	}
	if _, err := d.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	checkAgree(t, a, b, d)
	m, err = a.Encrypt([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Process(roundTrip(t, m)); !errors.Is(err, ErrRemoved) {
		t.Fatalf("removed member: got %v, want ErrRemoved", err)
	}

	// Exporter agreement.
	x1, _ := a.Export("test", []byte("ctx"), 32)
	x2, _ := d.Export("test", []byte("ctx"), 32)
	if !bytes.Equal(x1, x2) {
		t.Fatal("exported secrets differ")
	}

	// Eve joins by external commit, then resyncs.
	eve := newTestClient(t, cs, "eve")
	gi := out.GroupInfo
	giMsg := roundTrip(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi})
	e, commit, err := JoinExternal(cfg, giMsg.GroupInfo, nil, eve.cred, eve.sigKey, ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, b, d} {
		p, err := g.Process(roundTrip(t, commit))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Commit.Added) != 0 || p.Commit.Updated[len(p.Commit.Updated)-1] != e.OwnLeaf() {
			t.Fatalf("external commit result %+v", p.Commit)
		}
	}
	checkAgree(t, a, b, d, e)
	gi, err = d.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	tree, err = d.RatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	old := e.OwnLeaf()
	e2, commit, err := JoinExternal(cfg, gi, tree, eve.cred, eve.sigKey, ExternalJoinOptions{Resync: &old})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, b, d} {
		if _, err := g.Process(roundTrip(t, commit)); err != nil {
			t.Fatal(err)
		}
	}
	checkAgree(t, a, b, d, e2)
	m, err = e2.Encrypt([]byte("back"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Process(roundTrip(t, m)); err != nil || string(p.ApplicationData) != "back" {
		t.Fatalf("after resync: %v", err)
	}
}

// TestSecretTreeWindow checks that Config's window settings reach the
// secret tree: a message too far ahead is refused with ErrGenerationTooFar.
func TestSecretTreeWindow(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := testConfig()
	cfg.MaxForwardDistance = 2
	alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
	groups := newJoinedGroups(t, cfg, nil, alice, bob)
	a, b := groups[0], groups[1]
	var last *MLSMessage
	var err error
	for range 4 {
		if last, err = a.Encrypt([]byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Process(last); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("generation 3 with a window of 2: got %v, want ErrGenerationTooFar", err)
	}
}
