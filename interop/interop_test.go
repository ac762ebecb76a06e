package interop

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tainik/tainik/mls"
)

// suites are the cipher suites every scenario runs in.
var suites = []mls.CipherSuite{
	mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
	mls.MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
	mls.MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519,
}

// env makes the members of one scenario: those on the implementation that
// creates the group, and those on the other one.
type env struct {
	cs      mls.CipherSuite
	creator func(t *testing.T, name string) member
	other   func(t *testing.T, name string) member
}

func newMember(impl string, cs mls.CipherSuite) func(t *testing.T, name string) member {
	if impl == "go" {
		return func(t *testing.T, name string) member { return newGoMember(t, cs, name) }
	}
	return func(t *testing.T, name string) member { return newTSMember(t, cs, name) }
}

var scenarios = []struct {
	name string
	run  func(t *testing.T, e env)
}{
	{"welcome", testWelcome},
	{"application", testApplication},
	{"update-path", testUpdatePath},
	{"update", testUpdate},
	{"remove", testRemove},
	{"external-join", testExternalJoin},
	{"proposals", testProposals},
	{"four-members", testFourMembers},
}

func TestInterop(t *testing.T) {
	requireDriver(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, creator := range []string{"go", "ts-mls"} {
				other := "ts-mls"
				if creator == "ts-mls" {
					other = "go"
				}
				t.Run(creator+"-creates", func(t *testing.T) {
					for _, cs := range suites {
						t.Run(fmt.Sprintf("suite-%d", cs), func(t *testing.T) {
							t.Parallel()
							sc.run(t, env{cs: cs, creator: newMember(creator, cs), other: newMember(other, cs)})
						})
					}
				})
			}
		})
	}
}

// agree fails unless all members are in the same epoch with the same epoch
// authenticator, exporter output and member count.
func agree(t *testing.T, members ...member) {
	t.Helper()
	want := members[0].state(t)
	for _, m := range members[1:] {
		got := m.state(t)
		if got.Epoch != want.Epoch {
			t.Fatalf("%s member is in epoch %d, %s member in epoch %d", m.impl(), got.Epoch, members[0].impl(), want.Epoch)
		}
		if !bytes.Equal(got.EpochAuthenticator, want.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticators differ: %s member %x, %s member %x", got.Epoch, m.impl(), got.EpochAuthenticator, members[0].impl(), want.EpochAuthenticator)
		}
		if !bytes.Equal(got.Exporter, want.Exporter) {
			t.Fatalf("epoch %d: exporter outputs differ: %s member %x, %s member %x", got.Epoch, m.impl(), got.Exporter, members[0].impl(), want.Exporter)
		}
		if got.Members != want.Members {
			t.Fatalf("epoch %d: %s member sees %d members, %s member %d", got.Epoch, m.impl(), got.Members, members[0].impl(), want.Members)
		}
	}
}

func process(t *testing.T, m member, msg []byte, want string) processed {
	t.Helper()
	p, err := m.tryProcess(msg)
	if err != nil {
		var de *driverError
		if errors.As(err, &de) {
			t.Fatalf("%s member processing: %v\n%s", m.impl(), err, de.stack)
		}
		t.Fatalf("%s member processing: %v", m.impl(), err)
	}
	if p.Kind != want {
		t.Fatalf("%s member processed a %s, want a %s", m.impl(), p.Kind, want)
	}
	return p
}

// send has from encrypt a message that every member of to must decrypt.
func send(t *testing.T, from member, to ...member) {
	t.Helper()
	data := fmt.Appendf(nil, "from %s at epoch %d", from.impl(), from.state(t).Epoch)
	msg := from.encrypt(t, data)
	for _, m := range to {
		p := process(t, m, msg, "application")
		if !bytes.Equal(p.Data, data) {
			t.Fatalf("%s member decrypted %q, want %q", m.impl(), p.Data, data)
		}
	}
}

// commitTo has from commit and every member of to process the commit.
func commitTo(t *testing.T, from member, add [][]byte, remove []mls.LeafIndex, to ...member) (welcome []byte) {
	t.Helper()
	commit, welcome := from.commit(t, add, remove)
	for _, m := range to {
		process(t, m, commit, "commit")
	}
	return welcome
}

// pair returns a group of two: a creates it and adds b by Welcome.
func pair(t *testing.T, e env) (a, b member) {
	t.Helper()
	a, b = e.creator(t, "alice"), e.other(t, "bob")
	a.createGroup(t, []byte("interop group"))
	welcome := commitTo(t, a, [][]byte{b.keyPackage(t)}, nil)
	if welcome == nil {
		t.Fatalf("%s member's add commit has no Welcome", a.impl())
	}
	b.join(t, welcome, nil)
	agree(t, a, b)
	if got := b.state(t).Epoch; got != 1 {
		t.Fatalf("joined in epoch %d, want 1", got)
	}
	return a, b
}

func testWelcome(t *testing.T, e env) {
	a, b := pair(t, e)
	if got := b.state(t).Leaf; got != 1 {
		t.Fatalf("joiner is at leaf %d, want 1", got)
	}
	if got := a.state(t).Members; got != 2 {
		t.Fatalf("group has %d members, want 2", got)
	}

	// A second joiner, of the other implementation, gets a Welcome without
	// the ratchet_tree extension and the tree out of band (RFC 9420,
	// Section 12.4.3.3).
	c := e.other(t, "carol")
	commit, welcome, tree := a.commitTreeOutOfBand(t, [][]byte{c.keyPackage(t)})
	process(t, b, commit, "commit")
	if err := c.tryJoin(welcome, nil); err == nil {
		t.Fatalf("%s member joined without the ratchet tree; the Welcome should not carry it", c.impl())
	}
	c.join(t, welcome, tree)
	agree(t, a, b, c)
	send(t, c, a, b)
}

func testApplication(t *testing.T, e env) {
	a, b := pair(t, e)
	for range 3 {
		send(t, a, b)
		send(t, b, a)
	}
}

func testUpdatePath(t *testing.T, e env) {
	a, b := pair(t, e)
	commitTo(t, a, nil, nil, b)
	agree(t, a, b)
	send(t, b, a)
	commitTo(t, b, nil, nil, a)
	agree(t, a, b)
	send(t, a, b)
	send(t, b, a)
}

// testUpdate has the Go member propose an Update and the ts-mls member
// commit it; only the Go member proposes, as ts-mls 1.6.4 cannot create
// an Update proposal (see README.md).
func testUpdate(t *testing.T, e env) {
	a, b := pair(t, e)
	g, ts := a, b
	if a.impl() != "go" {
		g, ts = b, a
	}
	before := g.state(t).EpochAuthenticator
	process(t, ts, g.(*goMember).proposeUpdate(t), "proposal")
	// The commit's UpdatePath is encrypted to the Go leaf's new key, so
	// agreeing proves the Go member kept it.
	commitTo(t, ts, nil, nil, g)
	agree(t, a, b)
	if bytes.Equal(g.state(t).EpochAuthenticator, before) {
		t.Fatal("epoch authenticator unchanged by the commit")
	}
	send(t, g, ts)
	send(t, ts, g)
}

// testRemove: in a group of three, the creator removes a member of the
// other implementation, which then cannot decrypt the group's messages.
func testRemove(t *testing.T, e env) {
	a, b := pair(t, e)
	c := e.other(t, "carol")
	welcome := commitTo(t, a, [][]byte{c.keyPackage(t)}, nil, b)
	c.join(t, welcome, nil)
	agree(t, a, b, c)

	removed := b.state(t).Leaf
	commit, _ := a.commit(t, nil, []mls.LeafIndex{removed})
	process(t, c, commit, "commit")
	process(t, b, commit, "removed")
	agree(t, a, c)
	if got := a.state(t).Members; got != 2 {
		t.Fatalf("%d members after the remove, want 2", got)
	}

	for _, from := range []member{a, c} {
		msg := from.encrypt(t, []byte("not for bob"))
		if p, err := b.tryProcess(msg); err == nil {
			t.Fatalf("removed %s member processed a %s message from the %s member", b.impl(), p.Kind, from.impl())
		}
	}
	send(t, a, c)
	send(t, c, a)
}

// testProposals: each implementation commits, by reference, a proposal
// the other one sent: an Add, then a Remove.
func testProposals(t *testing.T, e env) {
	a, b := pair(t, e)
	c := e.creator(t, "carol")
	process(t, a, b.proposeAdd(t, c.keyPackage(t)), "proposal")
	welcome := commitTo(t, a, nil, nil, b)
	c.join(t, welcome, nil)
	agree(t, a, b, c)
	send(t, c, a, b)

	// Every member gets the proposal, the one it removes included.
	proposal := a.proposeRemove(t, c.state(t).Leaf)
	process(t, b, proposal, "proposal")
	process(t, c, proposal, "proposal")
	commit, _ := b.commit(t, nil, nil)
	process(t, a, commit, "commit")
	process(t, c, commit, "removed")
	agree(t, a, b)
	if got := a.state(t).Members; got != 2 {
		t.Fatalf("%d members after the remove, want 2", got)
	}
	send(t, a, b)
	send(t, b, a)
}

func testExternalJoin(t *testing.T, e env) {
	a := e.creator(t, "alice")
	a.createGroup(t, []byte("interop group"))
	send(t, a) // a message in epoch 0, so the secret tree is in use
	b := e.other(t, "bob")
	commit := b.externalJoin(t, a.groupInfo(t))
	process(t, a, commit, "commit")
	agree(t, a, b)
	send(t, a, b)
	send(t, b, a)

	// A second joiner, of the creator's implementation, joins through a
	// GroupInfo from the member who joined externally.
	c := e.creator(t, "carol")
	commit = c.externalJoin(t, b.groupInfo(t))
	process(t, a, commit, "commit")
	process(t, b, commit, "commit")
	agree(t, a, b, c)
	send(t, c, a, b)
}

// testFourMembers builds a group of two members on each implementation,
// each implementation adding one of them, then has every member send and
// commit.
func testFourMembers(t *testing.T, e env) {
	a1, b1 := e.creator(t, "alice"), e.other(t, "bob")
	a2, b2 := e.creator(t, "carol"), e.other(t, "dave")
	// One Go member sends its handshake messages as PrivateMessage, as
	// ts-mls does by default; the other keeps the Go default,
	// PublicMessage.
	for _, m := range []member{a2, b2} {
		if g, ok := m.(*goMember); ok {
			g.cfg.UsePrivateHandshake = true
		}
	}
	a1.createGroup(t, []byte("interop group of four"))
	welcome := commitTo(t, a1, [][]byte{b1.keyPackage(t), a2.keyPackage(t)}, nil)
	b1.join(t, welcome, nil)
	a2.join(t, welcome, nil)
	agree(t, a1, b1, a2)

	welcome = commitTo(t, b1, [][]byte{b2.keyPackage(t)}, nil, a1, a2)
	b2.join(t, welcome, nil)
	all := []member{a1, b1, a2, b2}
	agree(t, all...)
	if got := a1.state(t).Members; got != 4 {
		t.Fatalf("group has %d members, want 4", got)
	}

	for i, from := range all {
		send(t, from, others(all, i)...)
	}
	for i, from := range all {
		commitTo(t, from, nil, nil, others(all, i)...)
		agree(t, all...)
		send(t, all[(i+1)%len(all)], others(all, (i+1)%len(all))...)
	}

	// An Update of one Go member, committed by the other Go member, so that
	// the ts-mls members apply an Update they did not commit.
	var gos []*goMember
	for _, m := range all {
		if g, ok := m.(*goMember); ok {
			gos = append(gos, g)
		}
	}
	proposer, committer := gos[0], gos[1]
	update := proposer.proposeUpdate(t)
	for _, m := range all {
		if m != member(proposer) {
			process(t, m, update, "proposal")
		}
	}
	commitTo(t, committer, nil, nil, others(all, slices.Index(all, member(committer)))...)
	agree(t, all...)
	send(t, proposer, others(all, slices.Index(all, member(proposer)))...)
}

func others(all []member, i int) []member {
	var out []member
	for j, m := range all {
		if j != i {
			out = append(out, m)
		}
	}
	return out
}
