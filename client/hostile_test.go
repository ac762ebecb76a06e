package client

// Tests of the client against hostile peers: invitation holders,
// contacts, group members and relays that misbehave.

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relaytest"
	"github.com/tainik/tainik/mls"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/ws"
)

// fakeRelay serves the relay protocol on a loopback port with a fresh
// key and answers each request with answer's result (nil: no answer at
// all). It returns the relay's address.
func fakeRelay(t *testing.T, answer func(relay.Message) relay.Message) string {
	t.Helper()
	addr, _ := relaytest.Fake(t, func(wc *ws.Conn) {
		wc.WriteMessages(time.Now().Add(time.Second), relay.Encode(0, &relay.Hello{}))
		for {
			f, err := wc.ReadMessage()
			if err != nil {
				return
			}
			id, m, err := relay.Decode(f)
			if err != nil {
				return
			}
			if out := answer(m); out != nil {
				if wc.WriteMessages(time.Now().Add(5*time.Second), relay.Encode(id, out)) != nil {
					return
				}
			}
		}
	})
	return addr
}

// sendRequest sends a contact request from m to inv whose answer should
// go to replyRelay.
func sendRequest(t *testing.T, m *Client, inv *Invitation, replyRelay string) {
	t.Helper()
	ctx := context.Background()
	kp, _, err := mls.NewKeyPackage(suite, deviceCredential(m.ident, m.sig.PublicKey()), m.sig, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kpb, _ := kp.Marshal()
	_, pub := newX25519()
	req := contactRequest{Identity: m.Identity(), KeyPackage: kpb, ReplyRelay: replyRelay, ReplyID: relay.ID{1}, ReplyKey: pub}
	sealed, err := sealTo(inv.RequestKey, "tainik contact request v1", mustJSON(req))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := m.conn(ctx, inv.Relay)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(ctx, inv.SenderID, randomMsgID(), sealed, nil); err != nil {
		t.Fatal(err)
	}
}

// A contact request whose answer cannot be delivered (a malformed reply
// address, a relay that is down, one that never answers) affects only
// that answer: the inviter's other conversations are read, and Sync ends.
func TestBadReplyRelayDoesNotWedgeInviter(t *testing.T) {
	defer func(d time.Duration) { outboxTimeout = d }(outboxTimeout)
	outboxTimeout = time.Second
	ctx := context.Background()
	news, b, _ := pair(t, server.Config{})
	m, _ := newUser(t, news.Relay())
	inv, err := news.ContactAddress(ctx, "source", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	silent := fakeRelay(t, func(relay.Message) relay.Message { return nil })
	sendRequest(t, m, inv, "tainik://\x1b]0;PWNED\x07@127.0.0.1:1") // malformed: dropped
	sendRequest(t, m, inv, silent)                                  // never answers: retried
	cvb, _ := b.FindConversation("a")
	if _, err := b.Send(ctx, cvb, "urgent tip"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep, err := news.Sync(ctx)
	if err != nil || len(rep.Waiting) != 1 {
		t.Fatalf("Sync = %v, waiting %v: want success, with the answer to the silent relay waiting", err, rep.Waiting)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Sync took %v", d)
	}
	if len(rep.New) != 1 || rep.New[0].Text != "urgent tip" {
		t.Fatalf("Sync read %+v; want b's message despite the bad requests", rep.New)
	}
	if len(news.st.Outbox) != 1 || len(rep.NewContacts) != 1 {
		t.Fatalf("outbox %d, new contacts %q: want the well-formed request accepted and its answer kept", len(news.st.Outbox), rep.NewContacts)
	}
	if strings.Contains(rep.Waiting[0].Err.Error(), "\x1b") {
		t.Errorf("the malformed address reached the report: %q", rep.Waiting[0].Err)
	}
}

// A contact's group invitation that names a log the relay does not have
// fails that conversation only.
func TestBadGroupLogDoesNotWedge(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	mustSync(t, b) // b reads a's spare KeyPackage
	ct, _ := b.Contact("a")
	gcv, err := b.CreateGroup(ctx, "evil")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := b.group(gcv)
	kp, _ := mls.UnmarshalKeyPackage(ct.KeyPackage)
	welcome, from, err := b.commit(ctx, gcv, g, addOptions(kp))
	if err != nil {
		t.Fatal(err)
	}
	direct := b.conv(ct.Conversation)
	dg, _ := b.group(direct)
	pl := b.newPayload("group-invite")
	pl.Invite = &contactAccept{Identity: b.Identity(), Welcome: welcome, Relay: gcv.Relay, LogID: relay.ID{0xee}, LogToken: gcv.LogToken, From: from, Name: "evil"}
	if _, err := b.sendPayload(ctx, direct, dg, pl); err != nil {
		t.Fatal(err)
	}
	a.Sync(ctx) // joins "evil", whose log is not there
	if _, err := b.Send(ctx, direct, "later message"); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Sync(ctx)
	var partial *SyncError
	if !errors.As(err, &partial) || len(partial.Failed) != 1 || partial.Failed[0].What != "evil" {
		t.Fatalf("Sync = %v; want one failure, for the group", err)
	}
	if len(rep.New) != 1 || rep.New[0].Text != "later message" {
		t.Fatalf("Sync read %+v; want b's later message", rep.New)
	}
}

// A relay that answers LogRead without moving forward is an error, not
// an endless loop.
func TestRelayThatDoesNotAdvance(t *testing.T) {
	a, _, _ := pair(t, server.Config{})
	var reads atomic.Int64
	cva, _ := a.FindConversation("b")
	cva.Relay = fakeRelay(t, func(m relay.Message) relay.Message {
		if _, ok := m.(*relay.LogRead); ok {
			reads.Add(1)
			return &relay.LogEntries{More: true, Entries: []relay.LogEntry{{Seq: 0, Message: []byte{0}}}}
		}
		return &relay.ErrorFrame{Code: relay.CodeInternal}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Sync(ctx)
	if !errors.Is(err, errLogAnswer) || reads.Load() > 10 {
		t.Fatalf("Sync = %v after %d reads; want errLogAnswer at once", err, reads.Load())
	}
}

// An inviter's answer whose group has the id of a conversation the
// newcomer already has is refused.
func TestJoinRefusesKnownGroupID(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	mustSync(t, a)
	ga, err := a.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	p := &pendingState{Name: "b2", InviterIdentity: b.Identity()}
	kp, secrets, _ := mls.NewKeyPackage(suite, deviceCredential(a.ident, a.sig.PublicKey()), a.sig, mls.KeyPackageOptions{})
	p.KeyPackage, _ = kp.Marshal()
	p.Secrets, _ = secrets.Bytes()
	replyPriv, replyPub := newX25519()
	p.ReplyKey = replyPriv
	gid := mustHex(t, ga.ID)
	bkp, bsec, _ := mls.NewKeyPackage(suite, deviceCredential(b.ident, b.sig.PublicKey()), b.sig, mls.KeyPackageOptions{})
	g, err := mls.NewGroup(mlsConfig, gid, bkp, bsec, b.sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kp}})
	if err != nil {
		t.Fatal(err)
	}
	welcome, _ := out.Welcome.Marshal()
	sealed, _ := sealTo(replyPub, "tainik contact accept v1", mustJSON(contactAccept{Identity: b.Identity(), Welcome: welcome, Relay: b.Relay(), From: 1}))
	padded, _ := relay.Pad(sealed)
	if err := a.join(ctx, p, padded, new(SyncReport)); err == nil {
		t.Fatal("join accepted a group with the id of an existing conversation")
	}
	if n := len(a.st.Convs); n != 2 {
		t.Fatalf("%d conversations after a refused join", n)
	}
}

// A contact's attachment with numbers no SendFile makes is refused when
// it arrives and by GetFile, and a relay announcing a blob larger than a
// part cannot make GetFile hold it.
func TestHostileAttachments(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	cvb, _ := b.FindConversation("a")
	if _, err := b.send(ctx, cvb, "file x", &FileRef{Name: "x", Key: []byte{1}, Relay: b.Relay(), Parts: []FilePart{{}}}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	cva, _ := a.FindConversation("b")
	if _, err := a.FindFile(cva, "x"); err == nil {
		t.Error("a malformed attachment was kept")
	}
	if h := texts(a, cva); !strings.Contains(h, "attachment refused") {
		t.Errorf("history %q does not say the attachment was refused", h)
	}

	var asked atomic.Int64
	huge := fakeRelay(t, func(m relay.Message) relay.Message {
		if g, ok := m.(*relay.BlobGet); ok {
			asked.Add(1)
			return &relay.BlobData{Size: 1 << 40, Data: make([]byte, relay.MaxChunk)[:min(relay.MaxChunk, int(g.Max))]}
		}
		return &relay.ErrorFrame{Code: relay.CodeInternal}
	})
	ref := &FileRef{Name: "y", Size: 10, Key: make([]byte, 32), SHA256: make([]byte, 32), Relay: huge, Parts: []FilePart{{Size: 26}}}
	err := a.GetFile(ctx, ref, filepath.Join(t.TempDir(), "y"), nil)
	if err == nil || asked.Load() != 1 {
		t.Fatalf("GetFile from a relay announcing 1 TiB: %v after %d requests", err, asked.Load())
	}
}

// A group message whose id equals a 1:1 message's is still shown in the
// group: messages carry their conversation's id.
func TestMessageKeepsItsConversation(t *testing.T) {
	ctx := context.Background()
	a, b, ga := teamOfTwo(t)
	gb, _ := b.FindConversation("team")
	cva, _ := a.FindConversation("b")
	priv, _ := a.Send(ctx, cva, "private")
	mustSync(t, b)
	gg, _ := b.group(gb)
	pl := b.newPayload("text")
	pl.ID = priv.ID
	pl.Text = "said in the group"
	if _, err := b.sendPayload(ctx, gb, gg, pl); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Sync(ctx)
	if err != nil || len(rep.New) != 1 || rep.New[0].Conv != ga.ID {
		t.Fatalf("Sync = %+v, %v; want the group message with the group's id", rep.New, err)
	}
}

// A store or backup whose key derivation parameters Argon2id cannot use
// is refused, not a panic.
func TestCraftedStoreHeaderRefused(t *testing.T) {
	_, home := newUser(t, "tainik://x@127.0.0.1:1")
	data, _ := os.ReadFile(storePath(home))
	for _, off := range []int{0, 8} { // time (first byte of 4 zeroed below), threads
		bad := append([]byte(nil), data...)
		if off == 0 {
			copy(bad[len(storeMagic)+saltSize:], []byte{0, 0, 0, 0})
		} else {
			bad[len(storeMagic)+saltSize+off] = 0
		}
		path := filepath.Join(t.TempDir(), "backup")
		os.WriteFile(path, bad, 0o600)
		if _, err := Restore(filepath.Join(t.TempDir(), "h"), path, []byte("x"), Options{}); err == nil || !strings.Contains(err.Error(), "key derivation") {
			t.Errorf("header field at %d zeroed: Restore = %v", off, err)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A contact's proposal to add someone to the 1:1 is declined by the
// victim's client: its own commits leave it out and it can still send.
// When the contact then commits the proposal itself, the commit is
// processed and raises the key-change alarm, rather than leaving this
// device behind silently.
func TestForeignProposal(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	eve, _ := newUser(t, a.Relay())
	ekp, _, _ := mls.NewKeyPackage(suite, deviceCredential(eve.ident, eve.sig.PublicKey()), eve.sig, mls.KeyPackageOptions{})
	mustSync(t, b, a)
	cvb, _ := b.FindConversation("a")
	g, _ := b.group(cvb)
	msg, err := g.ProposeAdd(ekp)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := msg.Marshal()
	rc, _ := b.conn(ctx, cvb.Relay)
	seq, _, err := rc.Append(ctx, cvb.log(), data)
	if err != nil {
		t.Fatal(err)
	}
	b.markOwn(cvb, seq)
	b.storeGroup(cvb, g)

	mustSync(t, a) // a declines it
	cva, _ := a.FindConversation("b")
	if _, err := a.Send(ctx, cva, "still private?"); err != nil {
		t.Fatal(err)
	}
	if members, _ := a.Members(cva); len(members) != 2 {
		t.Fatalf("members of the 1:1 after b's Add proposal: %v", members)
	}

	mustSync(t, b)
	g, _ = b.group(cvb)
	empty := func(*mls.Group) (mls.CommitOptions, error) { return mls.CommitOptions{}, nil }
	if _, _, err := b.commit(ctx, cvb, g, empty); err != nil { // includes the Add by reference
		t.Fatal(err)
	}
	mustSync(t, a)
	ga, _ := a.group(cva)
	if ga.Epoch() != g.Epoch() {
		t.Fatalf("a at epoch %d, b at %d: a fell out of the conversation", ga.Epoch(), g.Epoch())
	}
	if len(a.Warnings()) == 0 {
		t.Fatal("no key-change warning after a stranger was added to the 1:1")
	}
	if _, err := a.Send(ctx, cva, "hello?"); err == nil {
		t.Fatal("sending into the 1:1 with a stranger in it was allowed")
	}
}

// A second group invitation sent before the contact published a new
// KeyPackage is refused at the inviter, not lost at the invitee (each
// KeyPackage opens one Welcome).
func TestKeyPackageUsedOnce(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	mustSync(t, b, a)
	one, _ := a.CreateGroup(ctx, "one")
	two, _ := a.CreateGroup(ctx, "two")
	if err := a.AddMember(ctx, one, "b"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(ctx, two, "b"); err == nil || !strings.Contains(err.Error(), "no KeyPackage") {
		t.Fatalf("second AddMember with the same KeyPackage: %v", err)
	}
	mustSync(t, b, a) // b joins "one" and publishes a new KeyPackage
	if err := a.AddMember(ctx, two, "b"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	for _, name := range []string{"one", "two"} {
		if _, err := b.FindConversation(name); err != nil {
			t.Errorf("b is not in %s: %v", name, err)
		}
	}
}

// Failing to publish a KeyPackage again and again reuses the one made
// for the first attempt.
func TestFailedPublishReusesSpare(t *testing.T) {
	ctx := context.Background()
	a, _, _ := pair(t, server.Config{})
	mustSync(t, a)
	cva, _ := a.FindConversation("b")
	cva.Relay = fakeRelay(t, func(relay.Message) relay.Message { return &relay.ErrorFrame{Code: relay.CodeInternal} })
	for range 3 {
		a.st.NeedKeyPackage[cva.ID] = true
		a.publishKeyPackage(ctx, cva)
	}
	unsent := 0
	for _, sp := range a.st.Spares {
		if sp.Conv == cva.ID && !sp.Sent {
			unsent++
		}
	}
	if unsent != 1 {
		t.Fatalf("%d unsent KeyPackages for one conversation after three failed attempts", unsent)
	}
}

// An answer given up for good takes the contact and conversation made
// for it along, if the requester never wrote there.
func TestGivenUpAnswerRemovesContact(t *testing.T) {
	ctx := context.Background()
	news, _, _ := pair(t, server.Config{})
	m, _ := newUser(t, news.Relay())
	inv, err := news.ContactAddress(ctx, "source", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gone := fakeRelay(t, func(relay.Message) relay.Message { return &relay.ErrorFrame{Code: relay.CodeNotFound} })
	sendRequest(t, m, inv, gone)
	rep, err := news.Sync(ctx)
	var partial *SyncError
	if !errors.As(err, &partial) || len(rep.NewContacts) != 1 {
		t.Fatalf("Sync = %+v, %v", rep, err)
	}
	if _, err := news.Contact(rep.NewContacts[0]); err == nil {
		t.Fatal("the contact of an answer given up is still there")
	}
	if len(news.st.Outbox) != 0 || len(news.st.Convs) != 1 {
		t.Fatalf("outbox %d, conversations %d after giving up", len(news.st.Outbox), len(news.st.Convs))
	}
}

// Work a Sync could not do (here a KeyPackage to publish, the contact's
// relay failing) is in the store, so the next command does it.
func TestLeftWorkSurvivesReopen(t *testing.T) {
	_, b, bhome := pair(t, server.Config{})
	mustSync(t, b)
	cvb, _ := b.FindConversation("a")
	cvb.Relay = fakeRelay(t, func(relay.Message) relay.Message { return &relay.ErrorFrame{Code: relay.CodeInternal} })
	b.st.NeedKeyPackage[cvb.ID] = true
	if _, err := b.Sync(context.Background()); err == nil {
		t.Fatal("Sync with a failing relay succeeded")
	}
	b.Close()
	b2, err := Open(bhome, []byte("pw-"+bhome), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if !b2.st.NeedKeyPackage[cvb.ID] {
		t.Fatal("the KeyPackage to publish was forgotten when the command ended")
	}
}

// Answers to silent relays wait longer after each failure, so that they
// cannot take every Sync's time from an honest requester's answer.
func TestOutboxNotStarved(t *testing.T) {
	defer func(d, b time.Duration) { outboxTimeout, outboxBudget = d, b }(outboxTimeout, outboxBudget)
	outboxTimeout, outboxBudget = time.Second, 1500*time.Millisecond
	ctx := context.Background()
	news, _, _ := pair(t, server.Config{})
	inv, err := news.ContactAddress(ctx, "source", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m, _ := newUser(t, news.Relay())
		sendRequest(t, m, inv, fakeRelay(t, func(relay.Message) relay.Message { return nil }))
	}
	news.Sync(ctx)
	r, _ := newUser(t, news.Relay())
	if err := r.Connect(ctx, inv.Link(), "news"); err != nil {
		t.Fatal(err)
	}
	news.Sync(ctx)
	news.Sync(ctx)
	if rep, err := r.Sync(ctx); err != nil || len(rep.NewContacts) != 1 {
		t.Fatalf("the honest requester's Sync = %+v, %v: its answer was never sent", rep, err)
	}
}

// An answer given up after the requester joined keeps the contact: a
// queue gone after delivery is a requester who joined and deleted it.
func TestGiveUpKeepsJoinedContact(t *testing.T) {
	ctx := context.Background()
	for _, published := range []bool{false, true} {
		news, r, lost := acceptedAnswer(t)
		// Delivered, but the answer to the send was lost.
		lost.MaybeDelivered = !published
		mustSync(t, news)
		news.st.Outbox = append(news.st.Outbox, &lost)
		if published {
			mustSync(t, r) // r joins, deletes its queue, and writes a KeyPackage
		} else if err := r.completeConnects(ctx, new(SyncReport)); err != nil { // r joins only
			t.Fatal(err)
		}
		news.Sync(ctx)
		if len(news.st.Contacts) != 2 {
			t.Fatalf("published %v: the joined requester's contact was removed", published)
		}
	}
}

// A requester whose relay never answers (so the answer may have arrived)
// and who never joins loses its contact a week after the answer is given
// up: a tip line does not keep one contact per such request for ever.
func TestSilentRequesterRemovedInTheEnd(t *testing.T) {
	defer func(d, b time.Duration) { outboxTimeout, outboxBudget = d, b }(outboxTimeout, outboxBudget)
	outboxTimeout, outboxBudget = 300*time.Millisecond, time.Second
	ctx := context.Background()
	addr := startRelay(t)
	clk := &clock{t: time.Now()}
	news, err := Init(t.TempDir(), []byte("pw"), addr, Options{KDF: testKDF, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer news.Close()
	inv, err := news.ContactAddress(ctx, "source", 60*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newUser(t, addr)
	sendRequest(t, m, inv, fakeRelay(t, func(relay.Message) relay.Message { return nil }))
	news.Sync(ctx) // accepted; the answer times out after it went out
	if len(news.st.Outbox) != 1 || !news.st.Outbox[0].MaybeDelivered {
		t.Fatalf("outbox %+v", news.st.Outbox)
	}
	clk.add(outboxKeep + time.Hour)
	news.Sync(ctx) // given up, but it may have arrived: the contact stays
	if len(news.st.Contacts) != 1 || len(news.st.Outbox) != 1 || !news.st.Outbox[0].Stopped {
		t.Fatalf("after giving up: contacts %d, outbox %+v", len(news.st.Contacts), news.st.Outbox)
	}
	clk.add(outboxKeep + time.Hour)
	news.Sync(ctx)
	if len(news.st.Contacts) != 0 || len(news.st.Outbox) != 0 {
		t.Fatalf("a requester who never joined still has a contact (%d) or marker (%d)", len(news.st.Contacts), len(news.st.Outbox))
	}
}

// A store from before Heard was kept: a requester whose KeyPackage was
// read keeps its contact when its answer is given up after the upgrade.
func TestGiveUpKeepsContactFromOlderStore(t *testing.T) {
	ctx := context.Background()
	news, r, lost := acceptedAnswer(t)
	mustSync(t, news, r, news) // delivered; r joins and publishes; news reads it
	ct, _ := news.Contact("source")
	if ct.KeyPackage == nil {
		t.Fatal("setup: no KeyPackage")
	}
	news.conv(ct.Conversation).Heard = false // as an older version stored it
	news.st.Outbox = append(news.st.Outbox, &lost)
	news.Sync(ctx)
	if _, err := news.Contact("source"); err != nil {
		t.Fatal("a joined contact with a KeyPackage was removed")
	}
}

// The search for an append whose answer was lost stops when the relay
// refuses to read, instead of asking again for findTimeout.
func TestFindAppendedStopsOnRefusal(t *testing.T) {
	a, _, _ := pair(t, server.Config{})
	cv, _ := a.FindConversation("b")
	var reads atomic.Int32
	cv.Relay = fakeRelay(t, func(m relay.Message) relay.Message {
		if _, ok := m.(*relay.LogRead); ok {
			reads.Add(1)
			return &relay.ErrorFrame{Code: relay.CodeAuth}
		}
		return nil // Append: no answer
	})
	g, err := a.group(cv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := a.sendPayload(ctx, cv, g, a.newPayload("text")); err == nil {
		t.Fatal("a send without an answer succeeded")
	}
	if d := time.Since(start); d > 5*time.Second || reads.Load() != 3 {
		t.Fatalf("send took %v and %d refused reads", d.Round(time.Second), reads.Load())
	}
}

// Init and Restore into the same empty home at once: at most one of
// them makes the profile.
func TestInitRestoreRace(t *testing.T) {
	addr := startRelay(t)
	src, srcHome := newUser(t, addr)
	backup := filepath.Join(t.TempDir(), "b")
	if err := src.Backup(backup); err != nil {
		t.Fatal(err)
	}
	pw := []byte("pw-" + srcHome)
	for i := range 100 {
		home := filepath.Join(t.TempDir(), "h")
		var wg sync.WaitGroup
		var ei, er error
		wg.Add(2)
		go func() {
			defer wg.Done()
			var c *Client
			if c, ei = Init(home, pw, addr, Options{KDF: testKDF}); c != nil {
				c.Close()
			}
		}()
		go func() {
			defer wg.Done()
			var c *Client
			if c, er = Restore(home, backup, pw, Options{}); c != nil {
				c.Close()
			}
		}()
		wg.Wait()
		if ei == nil && er == nil {
			t.Fatalf("run %d: Init and Restore both made a profile in one home", i)
		}
	}
}

// acceptedAnswer has r answer news's contact address "source", and news
// accept it; the answer waits in news's outbox, and a copy is returned.
func acceptedAnswer(t *testing.T) (news, r *Client, answer outboxItem) {
	t.Helper()
	ctx := context.Background()
	news, _, _ = pair(t, server.Config{})
	r, _ = newUser(t, news.Relay())
	inv, err := news.ContactAddress(ctx, "source", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Connect(ctx, inv.Link(), "news"); err != nil {
		t.Fatal(err)
	}
	if err := news.acceptRequests(ctx, new(SyncReport)); err != nil {
		t.Fatal(err)
	}
	return news, r, *news.st.Outbox[0]
}

// a relay that is draining (or busy, or failing for a moment) answers
// the lost-append lookup with a transient refusal; the commit counts it as
// "no such entry" and gives up after ~2 s, though the append landed.
func TestFindAppendedThroughTransientRefusals(t *testing.T) {
	for _, code := range []relay.Code{relay.CodeShuttingDown} { // as busy and internal: see refusedForGood
		a, _, _ := pair(t, server.Config{})
		cv, _ := a.FindConversation("b")
		var mu sync.Mutex
		var landed []byte
		var reads atomic.Int32
		cv.Relay = fakeRelay(t, func(m relay.Message) relay.Message {
			switch m := m.(type) {
			case *relay.LogAppend:
				mu.Lock()
				landed = m.Message // stored, but the answer is lost
				mu.Unlock()
				return nil
			case *relay.LogRead:
				if reads.Add(1) <= 3 {
					return &relay.ErrorFrame{Code: code}
				}
				mu.Lock()
				defer mu.Unlock()
				return &relay.LogEntries{Entries: []relay.LogEntry{{Seq: m.From, Message: landed}}}
			}
			return nil
		})
		g, err := a.group(cv)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err = a.sendPayload(ctx, cv, g, a.newPayload("text"))
		cancel()
		if err != nil {
			t.Errorf("code %v: append landed but reported failed after %d reads: %v", code, reads.Load(), err)
		}
	}
}

// between Restore's unlock and its Open, another process can lock
// the home and open the restored store without Refresh set: its first
// send would reuse the old ratchet.
func TestRestoredStoreRefreshesAtOnce(t *testing.T) {
	a, _, _ := pair(t, server.Config{})
	backup := filepath.Join(t.TempDir(), "b")
	if err := a.Backup(backup); err != nil {
		t.Fatal(err)
	}
	pw := []byte("pw-" + a.home)
	for i := range 100 {
		home := filepath.Join(t.TempDir(), "h")
		os.MkdirAll(home, 0o700)
		stop := make(chan struct{})
		var stale atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // another process polling the home
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				l, err := lockHome(context.Background(), home, 0)
				if err != nil {
					continue
				}
				if _, err := os.Stat(storePath(home)); err == nil {
					st := new(state)
					if _, err := openVault(home, pw, st); err == nil {
						for _, cv := range st.Convs {
							if !cv.Refresh {
								stale.Store(true)
							}
						}
					}
					l.unlock()
					return
				}
				l.unlock()
			}
		}()
		c, err := Restore(home, backup, pw, Options{})
		close(stop)
		wg.Wait()
		if c != nil {
			c.Close()
		}
		if stale.Load() {
			t.Fatalf("run %d: another opener got the restored store without Refresh (Restore err %v)", i, err)
		}
	}
}

// stopped markers count towards maxOutbox: one live answer behind
// maxOutbox markers is given up as "too many answers waiting", and as it
// never went out its contact is removed at once.
func TestMarkersDoNotCountTowardsMaxOutbox(t *testing.T) {
	news, _, _ := acceptedAnswer(t)
	live := news.st.Outbox[0]
	live.Next = news.now().Add(time.Hour) // its relay was down: waits
	ct := news.st.Contacts[len(news.st.Contacts)-1]
	// Markers for other, silent requesters.
	for range maxOutbox {
		cv, _, err := news.newConv(context.Background(), "silent", true)
		if err != nil {
			t.Fatal(err)
		}
		news.st.Outbox = append(news.st.Outbox, &outboxItem{Stopped: true, Tracked: true, Until: news.now().Add(outboxKeep), Conv: cv.ID, For: "silent"})
	}
	news.flushOutbox(context.Background(), new(SyncReport), map[string]bool{})
	if _, err := news.Contact(ct.Name); err != nil || len(news.st.Outbox) != maxOutbox+1 {
		t.Fatalf("the only live answer was given up (contact err %v, outbox %d)", err, len(news.st.Outbox))
	}
}

// a store from before Heard: the contact joined and published a
// KeyPackage, which news used to add them to a group (KeyPackage now nil).
// heard() no longer sees them and the contact is removed.
func TestOlderStoreContactsNeverRemoved(t *testing.T) {
	ctx := context.Background()
	news, r, lost := acceptedAnswer(t)
	mustSync(t, news, r, news)
	grp, err := news.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if err := news.AddMember(ctx, grp, "source"); err != nil {
		t.Fatal(err)
	}
	ct, _ := news.Contact("source")
	news.conv(ct.Conversation).Heard = false        // as an older version stored it
	lost.MaybeDelivered, lost.Tracked = true, false // as an older version stored it
	lost.Until = news.now().Add(-time.Minute)
	news.st.Outbox = append(news.st.Outbox, &lost)
	news.Sync(ctx)
	for _, it := range news.st.Outbox {
		it.Until = news.now().Add(-time.Minute)
	}
	news.Sync(ctx)
	if _, err := news.Contact("source"); err != nil {
		t.Fatal("a contact news added to a group was removed as a silent requester")
	}
	_ = errors.New
}
