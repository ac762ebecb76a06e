package client

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tainik/tainik/relay/server"
)

// texts is a conversation's messages, without notices, as sender:text|...
func texts(c *Client, cv *Conversation) string {
	var s []string
	for _, m := range c.History(cv) {
		if !m.Notice {
			s = append(s, m.Sender+":"+m.Text)
		}
	}
	return strings.Join(s, "|")
}

func mustSync(t *testing.T, cs ...*Client) {
	t.Helper()
	for _, c := range cs {
		if _, err := c.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGroupOfThree(t *testing.T) {
	ctx := context.Background()
	addr := startRelay(t)
	a, _ := newUser(t, addr)
	b, _ := newUser(t, addr)
	c, _ := newUser(t, addr)
	connect(t, a, b)
	inv, err := a.Invite(ctx, "c", 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, inv.Link(), "a"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a, c, a) // a accepts, c joins and publishes a KeyPackage, a reads it

	ga, err := a.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(ctx, ga, "b"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(ctx, ga, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, ga, "welcome all"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	gb, err := b.FindConversation("team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, gb, "hi from b"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, ga, "while c is away"); err != nil {
		t.Fatal(err)
	}
	// c was offline for all of it and catches up from the log.
	mustSync(t, c, a)
	gc, err := c.FindConversation("team")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := texts(c, gc), "a:welcome all|unknown:"; !strings.HasPrefix(got, want) {
		// b is not c's contact, so b shows by key.
		t.Errorf("c history %q", got)
	}
	if got := texts(c, gc); !strings.HasSuffix(got, "a:while c is away") || strings.Count(got, "|") != 2 {
		t.Errorf("c history %q", got)
	}
	if m, _ := a.Members(ga); len(m) != 3 {
		t.Errorf("members %v", m)
	}

	// b is removed and reads nothing sent afterwards.
	if err := a.RemoveMember(ctx, ga, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, ga, "secret after b left"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b, c)
	if got := texts(b, gb); strings.Contains(got, "secret") {
		t.Errorf("removed member read %q", got)
	}
	if !gb.Removed {
		t.Error("b does not know it was removed")
	}
	if _, err := b.Send(ctx, gb, "still here?"); err == nil {
		t.Error("removed member could send")
	}
	if got := texts(c, gc); !strings.HasSuffix(got, "a:secret after b left") {
		t.Errorf("c history %q", got)
	}

	// Rename, then c leaves; a commits the removal on its next sync.
	if err := a.Rename(ctx, ga, "newsroom"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, c)
	if gc.Name != "newsroom" {
		t.Errorf("c sees group name %q", gc.Name)
	}
	if err := c.Leave(ctx, gc); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	if m, _ := a.Members(ga); len(m) != 1 {
		t.Errorf("members after leave %v", m)
	}
	if _, err := a.Send(ctx, ga, "alone"); err != nil {
		t.Fatal(err)
	}
}

// A member removed from a group stops hearing it: Listen ends the log's
// subscription, which the relay would otherwise keep pushing (removal
// does not take the log's token away).
func TestListenDropsRemovedGroup(t *testing.T) {
	ctx := context.Background()
	a, b, ga := teamOfTwo(t)
	wake, err := b.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, b, wake)
	if err := a.RemoveMember(ctx, ga, "b"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up for the removal")
	}
	mustSync(t, b)
	if gb, err := b.FindConversation("team"); err != nil || !gb.Removed {
		t.Fatalf("b's group after the removal: %+v, %v", gb, err)
	}
	if _, err := b.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	settle(t, b, wake)
	if _, err := a.Send(ctx, ga, "b is gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken by a group b was removed from")
	case <-time.After(500 * time.Millisecond):
	}
}

// The spare KeyPackage a group invitation used is deleted: its init key
// must not open anything later.
func TestUsedSpareDeleted(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	mustSync(t, b, a) // a holds b's spare
	ct, _ := a.Contact("b")
	used := ct.KeyPackage
	ga, err := a.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(ctx, ga, "b"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	if _, err := b.FindConversation("team"); err != nil {
		t.Fatal(err)
	}
	for _, sp := range b.st.Spares {
		if bytes.Equal(sp.KeyPackage, used) {
			t.Fatal("the KeyPackage the invitation used is still kept")
		}
	}
}

// teamOfTwo makes a and b contacts, and a group "team" of a and b.
func teamOfTwo(t *testing.T) (a, b *Client, team *Conversation) {
	t.Helper()
	ctx := context.Background()
	a, b, _ = pair(t, server.Config{})
	mustSync(t, b, a) // a reads b's spare KeyPackage
	team, err := a.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(ctx, team, "b"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	return a, b, team
}
