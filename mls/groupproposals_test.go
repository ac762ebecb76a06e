package mls

import (
	"strings"
	"testing"
)

// TestExternalSenders checks proposals from an external sender of the
// external_senders extension and from a new member (RFC 9420, Section
// 12.1.8), and that required_capabilities is enforced on Add and on a
// GroupContextExtensions proposal (Section 11.1).
func TestExternalSenders(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := testConfig()
	alice, bob, server, newcomer := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob"), newTestClient(t, cs, "server"), newTestClient(t, cs, "newcomer")
	senders, err := ExternalSenders{{SignatureKey: server.sigKey.PublicKey(), Credential: server.cred}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	groups := newJoinedGroups(t, cfg, Extensions{{Type: ExtensionExternalSenders, Data: senders}}, alice, bob)
	a, b := groups[0], groups[1]

	sign := func(key *SignaturePrivateKey, sender Sender, p *Proposal) *MLSMessage {
		ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: FramedContent{
			GroupID: a.GroupID(), Epoch: a.Epoch(), Sender: sender, ContentType: ContentTypeProposal, Proposal: p}}
		if ac.Auth.Signature, err = cs.signContent(key, ac.WireFormat, &ac.Content, nil); err != nil {
			t.Fatal(err)
		}
		return roundTrip(t, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{Content: ac.Content, Auth: ac.Auth}})
	}

	// The server proposes removing Bob; a forged one is refused.
	remove := &Proposal{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: b.OwnLeaf()}}
	if _, err := a.Process(sign(newcomer.sigKey, Sender{Type: SenderExternal}, remove)); err == nil {
		t.Fatal("forged external proposal accepted")
	}
	if _, err := a.Process(sign(server.sigKey, Sender{Type: SenderExternal, ExternalIndex: 1}, remove)); err == nil {
		t.Fatal("proposal of an unknown external sender accepted")
	}
	m := sign(server.sigKey, Sender{Type: SenderExternal}, remove)
	for _, g := range []*Group{a, b} {
		if _, err := g.Process(m); err != nil {
			t.Fatal(err)
		}
	}
	// A newcomer proposes adding itself.
	kpN, secN := newcomer.keyPackage(t)
	add := sign(newcomer.sigKey, Sender{Type: SenderNewMemberProposal}, &Proposal{Type: ProposalTypeAdd, Add: &AddProposal{KeyPackage: *kpN}})
	for _, g := range []*Group{a, b} {
		if _, err := g.Process(add); err != nil {
			t.Fatal(err)
		}
	}
	out, err := a.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Process(roundTrip(t, out.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Commit.RemovedSelf {
		t.Fatal("bob not removed by the external proposal")
	}
	if _, err := a.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	n, err := JoinFromWelcome(cfg, out.Welcome.Welcome, kpN, secN, newcomer.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkAgree(t, a, n)

	// required_capabilities: an extension type nobody supports cannot be
	// required, and once required, a KeyPackage without it cannot join.
	req := func(types ...ExtensionType) Extensions {
		data, err := (&RequiredCapabilities{ExtensionTypes: types, ProposalTypes: []ProposalType{}, CredentialTypes: []CredentialType{}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return Extensions{{Type: ExtensionRequiredCapabilities, Data: data}, {Type: ExtensionExternalSenders, Data: senders}}
	}
	if _, err := a.Commit(CommitOptions{GroupContextExtensions: req(0x0f0f)}); err == nil || !strings.Contains(err.Error(), "required extension") {
		t.Fatalf("unsupported required extension: got %v", err)
	}
	kpX, _, err := NewKeyPackage(cs, Credential{Type: CredentialBasic, Identity: []byte("x")}, mustSigKey(t, cs), KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(CommitOptions{GroupContextExtensions: req(), Add: []*KeyPackage{kpX}}); err != nil {
		t.Fatal(err)
	}
	a.DiscardPendingCommit()
	// A KeyPackage missing the group's external_senders... is fine
	// (default type); one whose capabilities lack a required type is not.
	if _, err := a.Commit(CommitOptions{GroupContextExtensions: req(0x0f0f), Add: []*KeyPackage{kpX}}); err == nil {
		t.Fatal("required capability not enforced")
	}
}

func mustSigKey(t *testing.T, cs CipherSuite) *SignaturePrivateKey {
	k, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestReInit checks that a committed ReInit closes the group for sending.
// See RFC 9420, Section 11.2.
func TestReInit(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := testConfig()
	alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
	groups := newJoinedGroups(t, cfg, nil, alice, bob)
	a, b := groups[0], groups[1]
	m, err := b.ProposeReInit([]byte("g2"), ProtocolMLS10, cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Process(roundTrip(t, m)); err != nil {
		t.Fatal(err)
	}
	out, err := a.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Process(roundTrip(t, out.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if p.Commit.ReInit == nil || string(p.Commit.ReInit.GroupID) != "g2" {
		t.Fatalf("ReInit not reported: %+v", p.Commit)
	}
	if _, err := b.Encrypt([]byte("x"), nil); err != ErrReInit {
		t.Fatalf("send after ReInit: got %v, want ErrReInit", err)
	}
	if _, err := a.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}

	// Alice sets up the new group, linked to the old by a reinit PSK
	// (Section 11.2); Bob joins it with the old group's resumption PSK.
	oldGroups := map[string]*Group{"alice": a, "bob": b}
	lookup := func(who string) PSKLookup {
		return func(id *PreSharedKeyID) ([]byte, error) {
			g := oldGroups[who]
			if string(id.GroupID) != string(g.GroupID()) {
				return nil, ErrWelcomeNotForUs
			}
			return g.ResumptionPSK(id.Epoch)
		}
	}
	cfgA, cfgB := cfg, cfg
	cfgA.ResumptionPSKs, cfgB.ResumptionPSKs = lookup("alice"), lookup("bob")
	kpA2, secA2 := alice.keyPackage(t)
	a2, err := NewGroup(cfgA, []byte("g2"), kpA2, secA2, alice.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	kpB2, secB2 := bob.keyPackage(t)
	nonce, _ := a2.NewPSKNonce()
	psk := PreSharedKeyID{Type: PSKResumption, Usage: ResumptionReInit, GroupID: a.GroupID(), Epoch: a.Epoch(), Nonce: nonce}
	out, err = a2.Commit(CommitOptions{Add: []*KeyPackage{kpB2}, PSKs: []PreSharedKeyID{psk}})
	if err != nil {
		t.Fatal(err)
	}
	a2.MergePendingCommit()
	b2, err := JoinFromWelcome(cfgB, out.Welcome.Welcome, kpB2, secB2, bob.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkAgree(t, a2, b2)
	if b2.Epoch() != 1 {
		t.Fatalf("new group at epoch %d, want 1", b2.Epoch())
	}
	// A reinit PSK is refused in a regular commit.
	if _, err := a2.Commit(CommitOptions{PSKs: []PreSharedKeyID{psk}}); err == nil {
		t.Fatal("reinit PSK accepted outside a reinitialization")
	}
}

// TestPSKProposals injects a resumption PSK of an earlier epoch (RFC 9420,
// Section 8.6) and an external PSK (Section 8.4), by reference and by
// value, and checks the members agree; a member without the external PSK
// cannot process the commit and keeps its state.
func TestPSKProposals(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	psk := []byte("an external secret shared out of band")
	cfg := testConfig()
	cfg.ExternalPSKs = func(id *PreSharedKeyID) ([]byte, error) {
		if string(id.ID) == "ext" {
			return psk, nil
		}
		return nil, ErrWelcomeNotForUs
	}
	alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
	groups := newJoinedGroups(t, cfg, nil, alice, bob)
	a, b := groups[0], groups[1]
	// An empty commit so that epoch 1 is a past epoch both hold.
	out, err := b.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Process(roundTrip(t, out.Commit))
	b.MergePendingCommit()

	nonce1, _ := a.NewPSKNonce()
	nonce2, _ := a.NewPSKNonce()
	m, err := b.ProposePSK(PreSharedKeyID{Type: PSKResumption, Usage: ResumptionApplication, GroupID: a.GroupID(), Epoch: 1, Nonce: nonce1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Process(roundTrip(t, m)); err != nil {
		t.Fatal(err)
	}
	out, err = a.Commit(CommitOptions{PSKs: []PreSharedKeyID{{Type: PSKExternal, ID: []byte("ext"), Nonce: nonce2}}})
	if err != nil {
		t.Fatal(err)
	}
	noPSK := cfg
	noPSK.ExternalPSKs = nil
	state, err := b.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := RestoreGroup(noPSK, state, bob.sigKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Process(roundTrip(t, out.Commit)); err == nil {
		t.Fatal("commit processed without its external PSK")
	}
	after, _ := b2.MarshalState()
	if string(after) != string(state) {
		t.Fatal("failed commit changed the state")
	}
	if _, err := b.Process(roundTrip(t, out.Commit)); err != nil {
		t.Fatal(err)
	}
	a.MergePendingCommit()
	checkAgree(t, a, b)
}

// TestDeclineProposal: a proposal the application's policy refuses is
// left out of this member's commits and does not hold back application
// data, also after the state is saved and restored; another member's
// commit that includes it is still processed.
func TestDeclineProposal(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := testConfig()
	alice, bob, eve := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob"), newTestClient(t, cs, "eve")
	groups := newJoinedGroups(t, cfg, nil, alice, bob)
	a, b := groups[0], groups[1]
	kpE, _ := eve.keyPackage(t)
	prop, err := b.ProposeAdd(kpE)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Process(roundTrip(t, prop))
	if err != nil || p.Proposal == nil {
		t.Fatalf("Process(proposal) = %+v, %v", p, err)
	}
	if _, err := a.Encrypt([]byte("x"), nil); err != ErrProposalsPending {
		t.Fatalf("Encrypt with a proposal pending = %v", err)
	}
	if !a.DeclineProposal(p.ProposalRef) {
		t.Fatal("DeclineProposal did not find the cached proposal")
	}
	st, err := a.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	a2, err := RestoreGroup(cfg, st, alice.sigKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{a, a2} {
		if _, err := g.Encrypt([]byte("x"), nil); err != nil {
			t.Fatalf("Encrypt after declining the only proposal: %v", err)
		}
	}
	// a's own commit leaves it out.
	out, err := a.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Welcome != nil {
		t.Fatal("the commit welcomes the declined Add's member")
	}
	// b's commit, which includes it by reference, is still processed.
	bout, err := b.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a2.Process(roundTrip(t, bout.Commit))
	if err != nil {
		t.Fatalf("processing another member's commit of a declined proposal: %v", err)
	}
	if res.Commit == nil || len(a2.Members()) != 3 {
		t.Fatalf("after b's commit: %d members", len(a2.Members()))
	}
}

// A version 1 state (saved before declined proposals were kept) restores.
func TestRestoreStateVersion1(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := testConfig()
	alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
	a := newJoinedGroups(t, cfg, nil, alice, bob)[0]
	st, err := a.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 ends with an empty vector of declined proposals: one
	// zero length byte (the MLS varint of 0). Version 1 has none.
	if st[len(st)-1] != 0 {
		t.Fatalf("state ends with %x, want an empty vector", st[len(st)-1])
	}
	v1 := append([]byte{0, 1}, st[2:len(st)-1]...)
	g, err := RestoreGroup(cfg, v1, alice.sigKey)
	if err != nil {
		t.Fatal(err)
	}
	if g.Epoch() != a.Epoch() || len(g.Members()) != 2 {
		t.Fatal("the version 1 state restored differently")
	}
}
