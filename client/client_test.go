package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relaytest"
	"github.com/tainik/tainik/mls"
	"github.com/tainik/tainik/relay"
	relayclient "github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
)

var testKDF = KDFParams{Time: 1, Memory: 64, Threads: 1}

func startRelay(t *testing.T) string {
	t.Helper()
	return startRelayWith(t, server.Config{})
}

// startRelayWith starts a relay with cfg and a temporary DataDir.
func startRelayWith(t *testing.T, cfg server.Config) string {
	t.Helper()
	_, addr := relaytest.Start(t, cfg)
	return addr
}

func newUser(t *testing.T, addr string) (*Client, string) {
	t.Helper()
	home := t.TempDir()
	c, err := Init(home, []byte("pw-"+home), addr, Options{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, home
}

// pair starts a relay with cfg and returns two users on it who are each
// other's contacts, "b" at a and "a" at b, and b's home.
func pair(t *testing.T, cfg server.Config) (a, b *Client, bhome string) {
	t.Helper()
	addr := startRelayWith(t, cfg)
	a, _ = newUser(t, addr)
	b, bhome = newUser(t, addr)
	connect(t, a, b)
	return a, b, bhome
}

// connect makes a and b contacts, named "b" at a and "a" at b.
func connect(t *testing.T, a, b *Client) {
	t.Helper()
	ctx := context.Background()
	inv, err := a.Invite(ctx, "b", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctx, inv.Link(), "a"); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Sync(ctx)
	if err != nil || len(rep.NewContacts) != 1 {
		t.Fatalf("a.Sync = %+v, %v", rep, err)
	}
	rep, err = b.Sync(ctx)
	if err != nil || len(rep.NewContacts) != 1 {
		t.Fatalf("b.Sync = %+v, %v", rep, err)
	}
}

func TestConnectAndChat(t *testing.T) {
	ctx := context.Background()
	a, b, bhome := pair(t, server.Config{})

	na, _ := a.SafetyNumber("b")
	nb, _ := b.SafetyNumber("a")
	if na != nb || len(na) != 60 {
		t.Fatalf("safety numbers %q and %q", na, nb)
	}

	cva, _ := a.FindConversation("b")
	cvb, _ := b.FindConversation("a")
	if _, err := a.Send(ctx, cva, "hello b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, cvb, "hello a"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := func(c *Client, cv *Conversation) string {
		var s []string
		for _, m := range c.History(cv) {
			s = append(s, m.Sender+":"+m.Text)
		}
		return strings.Join(s, "|")
	}
	if g := got(a, cva); g != "me:hello b|b:hello a" {
		t.Errorf("a history %q", g)
	}
	if g := got(b, cvb); g != "a:hello b|me:hello a" {
		t.Errorf("b history %q", g)
	}

	// Restart: history survives; a wrong passphrase changes nothing.
	b.Close()
	if _, err := Open(bhome, []byte("wrong"), Options{}); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Open with wrong passphrase: %v", err)
	}
	b2, err := Open(bhome, []byte("pw-"+bhome), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cvb2, _ := b2.FindConversation("a")
	if g := got(b2, cvb2); g != "a:hello b|me:hello a" {
		t.Errorf("b history after restart %q", g)
	}
	if _, err := b2.Send(ctx, cvb2, "after restart"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if g := got(a, cva); g != "me:hello b|b:hello a|b:after restart" {
		t.Errorf("a history %q", g)
	}
}

func TestInvitationTampered(t *testing.T) {
	addr := startRelay(t)
	a, _ := newUser(t, addr)
	inv, err := a.Invite(context.Background(), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	link := inv.Link()
	if _, err := ParseInvitation(link, time.Now()); err != nil {
		t.Fatal(err)
	}
	b := []byte(link)
	i := len(InvitePrefix) + 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	if _, err := ParseInvitation(string(b), time.Now()); !errors.Is(err, ErrInvalidInvite) {
		t.Errorf("tampered link: %v", err)
	}
	if _, err := ParseInvitation(link, time.Now().Add(2*time.Hour)); !errors.Is(err, ErrExpiredInvite) {
		t.Errorf("expired link: %v", err)
	}
	if _, err := ParseInvitation(link[:len(link)-3], time.Now()); !errors.Is(err, ErrInvalidInvite) {
		t.Errorf("truncated link: %v", err)
	}
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	a, b, bhome := pair(t, server.Config{})
	cva, _ := a.FindConversation("b")
	a.Send(ctx, cva, "before backup")
	mustSync(t, b)
	bk := t.TempDir() + "/b.backup"
	if err := b.Backup(bk); err != nil {
		t.Fatal(err)
	}
	b.Close()
	home2 := t.TempDir() + "/restored"
	if _, err := Restore(home2, bk, []byte("wrong"), Options{}); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("restore with wrong passphrase: %v", err)
	}
	if _, err := Restore(bhome, bk, []byte("pw-"+bhome), Options{}); err == nil {
		t.Fatal("restore over a profile succeeded")
	}
	r, err := Restore(home2, bk, []byte("pw-"+bhome), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cvr, _ := r.FindConversation("a")
	a.Send(ctx, cva, "after restore")
	mustSync(t, r)
	if got := texts(r, cvr); got != "a:before backup|a:after restore" {
		t.Errorf("restored history %q", got)
	}
	// The restored device commits fresh keys before it sends.
	epoch := func(c *Client, cv *Conversation) uint64 { g, _ := c.group(cv); return g.Epoch() }
	before := epoch(r, cvr)
	if _, err := r.Send(ctx, cvr, "from the restored device"); err != nil {
		t.Fatal(err)
	}
	if epoch(r, cvr) != before+1 || cvr.Refresh {
		t.Errorf("no fresh keys: epoch %d -> %d", before, epoch(r, cvr))
	}
	mustSync(t, a)
	if got := texts(a, cva); got != "me:before backup|me:after restore|b:from the restored device" {
		t.Errorf("a history %q", got)
	}
}

func TestHomeLock(t *testing.T) {
	defer func(w time.Duration) { lockWait = w }(lockWait)
	lockWait = 50 * time.Millisecond
	addr := startRelay(t)
	a, home := newUser(t, addr)
	pw := []byte("pw-" + home)
	if _, err := Open(home, pw, Options{}); err == nil || !strings.Contains(err.Error(), "another tainik process") {
		t.Fatalf("second Open: %v", err)
	}
	a.Release()
	b, err := Open(home, pw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Invite(context.Background(), "x", time.Hour); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(a.st.Invites) != 1 {
		t.Errorf("Reload did not see the other process's invite")
	}
}

func TestTwoRelays(t *testing.T) {
	ctx := context.Background()
	a, _ := newUser(t, startRelay(t))
	b, _ := newUser(t, startRelay(t))
	c, _ := newUser(t, startRelay(t))
	connect(t, a, b)
	cvb, _ := b.FindConversation("a")
	if _, err := b.Send(ctx, cvb, "across relays"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	cva, _ := a.FindConversation("b")
	if got := texts(a, cva); got != "b:across relays" {
		t.Errorf("a history %q", got)
	}
	// b creates a group on its relay and adds c, whose home is a third.
	inv, err := b.Invite(ctx, "c", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, inv.Link(), "b"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b, c, b, a)
	g, err := b.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddMember(ctx, g, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddMember(ctx, g, "c"); err != nil {
		t.Fatal(err)
	}
	b.Send(ctx, g, "three relays")
	mustSync(t, a, c)
	for _, u := range []*Client{a, c} {
		cv, err := u.FindConversation("g")
		if err != nil {
			t.Fatal(err)
		}
		if got := texts(u, cv); got != "b:three relays" {
			t.Errorf("history %q", got)
		}
	}
}

// A stranger slipped into a 1:1 conversation (a compromised peer or
// relay-side attack) raises the alarm and blocks sending.
func TestKeyChangeWarning(t *testing.T) {
	ctx := context.Background()
	addr := startRelay(t)
	a, _ := newUser(t, addr)
	b, _ := newUser(t, addr)
	m, _ := newUser(t, addr)
	connect(t, a, b)
	cva, _ := a.FindConversation("b")
	kp, _, err := mls.NewKeyPackage(suite, deviceCredential(m.ident, m.sig.PublicKey()), m.sig, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := a.group(cva)
	if _, _, err := a.commit(ctx, cva, g, addOptions(kp)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	w := b.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "changed") {
		t.Fatalf("warnings %q", w)
	}
	cvb, _ := b.FindConversation("a")
	if _, err := b.Send(ctx, cvb, "x"); err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("send after key change: %v", err)
	}
	if err := b.Verify("a", ""); err != nil {
		t.Fatal(err)
	}
	if len(b.Warnings()) != 0 {
		t.Error("warning stays after verify")
	}
}

func TestContactAddress(t *testing.T) {
	ctx := context.Background()
	addr := startRelay(t)
	news, _ := newUser(t, addr)
	s1, _ := newUser(t, addr)
	s2, _ := newUser(t, addr)
	inv, err := news.ContactAddress(ctx, "source", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Client{s1, s2} {
		if err := s.Connect(ctx, inv.Link(), "newsroom"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := news.Sync(ctx)
	if err != nil || len(rep.NewContacts) != 2 {
		t.Fatalf("Sync = %+v, %v", rep, err)
	}
	mustSync(t, s1, s2)
	for i, s := range []*Client{s1, s2} {
		cv, err := s.FindConversation("newsroom")
		if err != nil {
			t.Fatal(err)
		}
		s.Send(ctx, cv, fmt.Sprintf("tip %d", i+1))
	}
	mustSync(t, news)
	c1, _ := news.FindConversation("source")
	c2, _ := news.FindConversation("source-2")
	if got := texts(news, c1) + "/" + texts(news, c2); got != "source:tip 1/source-2:tip 2" && got != "source:tip 2/source-2:tip 1" {
		t.Errorf("newsroom got %q", got)
	}
	// A one-time link works once.
	once, _ := news.Invite(ctx, "x", time.Hour)
	s1.Connect(ctx, once.Link(), "n2")
	mustSync(t, news)
	if err := s2.Connect(ctx, once.Link(), "n2"); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("second use of a one-time link: %v", err)
	}
}

// settle answers wake-ups with Syncs until none comes for 300 ms, which
// must happen within a few rounds: a channel that keeps firing with
// nothing to read would make a front end spin.
func settle(t *testing.T, c *Client, wake <-chan struct{}) {
	t.Helper()
	for range 5 {
		select {
		case <-wake:
			if _, err := c.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
	t.Fatal("the Listen channel keeps firing with nothing new")
}

// Listen's channel fires when a contact's message reaches the relay, and
// the Sync it prompts reads the message; otherwise it stays quiet.
func TestListenWakesOnMessage(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wake, err := b.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, b, wake)
	cva, _ := a.FindConversation("b")
	if _, err := a.Send(ctx, cva, "wake up"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after a message")
	}
	rep, err := b.Sync(ctx)
	if err != nil || len(rep.New) != 1 || rep.New[0].Text != "wake up" {
		t.Fatalf("Sync after wake-up = %+v, %v", rep, err)
	}
	settle(t, b, wake)
	// A second Close (as after an error path) is harmless.
	b.Close()
	b.Close()
}

// A contact address flooded with more garbage than one receive returns
// still yields the real request at the first Sync after the wake-up: the
// relay pushed the whole backlog already and announces none of it again.
func TestListenFloodedContactAddress(t *testing.T) {
	ctx := context.Background()
	addr := startRelayWith(t, server.Config{ContactRate: 1e4, ContactBurst: 1e4})
	a, _ := newUser(t, addr)
	b, _ := newUser(t, addr)
	inv, err := a.ContactAddress(ctx, "tip", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wake, err := a.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := relayclient.Dial(ctx, addr, relayclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	junk, _ := relay.Pad([]byte("junk"))
	for range 150 {
		if err := rc.Send(ctx, a.st.Invites[0].Queue.SenderID, randomMsgID(), junk, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Connect(ctx, inv.Link(), "a"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up for the requests")
	}
	time.Sleep(200 * time.Millisecond) // let the pushes settle
	rep, err := a.Sync(ctx)
	if err != nil || len(rep.NewContacts) != 1 || rep.More {
		t.Fatalf("Sync = %+v, %v; want the one real contact", rep, err)
	}
}

// A Sync that brings nothing writes nothing: a long-running front end on
// the same profile takes a new store file as another command's change.
func TestIdleSyncWritesNothing(t *testing.T) {
	ctx := context.Background()
	_, b, bhome := pair(t, server.Config{})
	mustSync(t, b)
	before, err := os.Stat(storePath(bhome))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	after, err := os.Stat(storePath(bhome))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Fatal("a Sync with nothing new replaced the store file")
	}
	if _, err := b.Invite(ctx, "x", time.Hour); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Stat(storePath(bhome)); os.SameFile(now, after) {
		t.Fatal("a change was not saved")
	}
}

// Changed reports a save by another process between Release and Reload,
// and only that.
func TestChangedAfterOtherProcessSaves(t *testing.T) {
	addr := startRelay(t)
	a, home := newUser(t, addr)
	if a.Changed() {
		t.Fatal("Changed right after Init")
	}
	a.Release()
	if a.Changed() {
		t.Fatal("Changed without any other save")
	}
	other, err := Open(home, []byte("pw-"+home), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Invite(context.Background(), "x", time.Hour); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if !a.Changed() {
		t.Fatal("a save by another process was not noticed")
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.Changed() {
		t.Fatal("Changed after Reload")
	}
	if len(a.st.Invites) != 1 {
		t.Fatalf("Reload read %d invitations, want 1", len(a.st.Invites))
	}
}

// A second front end on the same profile takes the queue subscriptions
// over (the relay pushes a queue to one connection only); the first
// subscribes again within renewEvery.
func TestListenRenewsQueueSubscriptions(t *testing.T) {
	ctx := context.Background()
	addr := startRelay(t)
	home := t.TempDir()
	var skew atomic.Int64
	opts := Options{KDF: testKDF, Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}
	x, err := Init(home, []byte("pw"), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	inv, err := x.Invite(ctx, "b", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wake, err := x.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x.Release()
	y, err := Open(home, []byte("pw"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { y.Close() })
	if _, err := y.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	y.Release()
	if err := x.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := newUser(t, addr)
	if err := b.Connect(ctx, inv.Link(), "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken for a queue another front end took over")
	case <-time.After(300 * time.Millisecond):
	}
	skew.Store(int64(renewEvery + time.Minute))
	if _, err := x.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after renewing the queue subscription")
	}
}
