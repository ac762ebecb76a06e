package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tainik/tainik/relay/server"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDisappearingMessages(t *testing.T) {
	ctx := context.Background()
	addr := startRelay(t)
	clk := &clock{t: time.Now()}
	mk := func() (*Client, string) {
		home := t.TempDir()
		c, err := Init(home, []byte("pw"), addr, Options{KDF: testKDF, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, home
	}
	a, _ := mk()
	b, bhome := mk()
	connect(t, a, b)
	cva, _ := a.FindConversation("b")
	a.Send(ctx, cva, "kept")
	if err := a.SetDisappear(ctx, cva, time.Minute); err != nil {
		t.Fatal(err)
	}
	a.Send(ctx, cva, "vanishes")
	mustSync(t, b)
	cvb, _ := b.FindConversation("a")
	if cvb.Disappear != time.Minute {
		t.Fatalf("b's timer %v", cvb.Disappear)
	}
	if got := texts(b, cvb); got != "a:kept|a:vanishes" {
		t.Fatalf("b history %q", got)
	}
	// Every member is told who changed the timer.
	if h := b.History(cvb); len(h) != 3 || !h[1].Notice || h[1].Sender != "a" || h[1].Text != "set new messages to disappear after 1m0s" {
		t.Fatalf("b history %+v: want the timer change between the messages", h)
	}
	b.Send(ctx, cvb, "also vanishes")
	clk.add(2 * time.Minute)
	mustSync(t, a, b)
	if got := texts(a, cva); got != "me:kept" {
		t.Errorf("a history %q", got)
	}
	b.Close()
	b2, err := Open(bhome, []byte("pw"), Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cvb2, _ := b2.FindConversation("a")
	if got := texts(b2, cvb2); got != "a:kept" {
		t.Errorf("b history after reopen %q", got)
	}
	// Gone from the store file, not only hidden: the kept message and
	// the timer's notice stay.
	raw := b2.st.Convs[0].Messages
	if len(raw) != 2 || !raw[1].Notice {
		t.Errorf("store keeps %+v", raw)
	}
}

// TestDisappearingLeavesRelay: the relay stops serving a disappearing
// message once its timer has run, and keeps the handshake around it.
func TestDisappearingLeavesRelay(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{ExpireInterval: 50 * time.Millisecond})
	cva, _ := a.FindConversation("b")
	if err := a.SetDisappear(ctx, cva, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	m, err := a.Send(ctx, cva, "vanishes")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := a.conn(ctx, cva.Relay)
	if err != nil {
		t.Fatal(err)
	}
	served := func() (seqs []uint64) {
		t.Helper()
		for from := uint64(1); ; {
			r, err := rc.Read(ctx, cva.log(), from)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Entries {
				seqs = append(seqs, e.Seq)
				from = e.Seq + 1
			}
			if !r.More {
				return seqs
			}
		}
	}
	before := served()
	if !slices.Contains(before, m.Seq) {
		t.Fatalf("relay does not serve the message (seq %d) before it expires: %v", m.Seq, before)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		after := served()
		if !slices.Contains(after, m.Seq) {
			if want := slices.DeleteFunc(before, func(s uint64) bool { return s == m.Seq }); !slices.Equal(after, want) {
				t.Errorf("relay serves %v after expiry, want %v: only the message goes", after, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay still serves the message (seq %d) %v after sending", m.Seq, time.Since(m.Sent))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	// b, syncing late, gets the timer (an application message without a
	// lifetime) across the gap, but never the message.
	mustSync(t, b)
	cvb, _ := b.FindConversation("a")
	if cvb.Disappear != 2*time.Second || texts(b, cvb) != "" {
		t.Errorf("b: timer %v, history %q", cvb.Disappear, texts(b, cvb))
	}
}

func TestFileTransfer(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	dir := t.TempDir()
	data := make([]byte, 2*PartSize+12345)
	rand.Read(data)
	src := filepath.Join(dir, "doc.bin")
	os.WriteFile(src, data, 0o600)
	cva, _ := a.FindConversation("b")
	var last int64
	if _, err := a.SendFile(ctx, cva, src, func(done, total int64) { last = done }); err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) {
		t.Errorf("progress ended at %d", last)
	}
	mustSync(t, b)
	cvb, _ := b.FindConversation("a")
	ref, err := b.FindFile(cvb, "doc.bin")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.bin")
	if err := b.GetFile(ctx, ref, out, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatal("file differs")
	}
	// An existing file is never replaced.
	existing := filepath.Join(dir, "mine.txt")
	os.WriteFile(existing, []byte("keep me"), 0o600)
	if err := b.GetFile(ctx, ref, existing, nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("GetFile onto an existing file: %v", err)
	}
	if kept, _ := os.ReadFile(existing); string(kept) != "keep me" {
		t.Error("GetFile replaced an existing file")
	}
	// A wrong key (or altered blob) is refused.
	bad := *ref
	bad.Key = bytes.Clone(ref.Key)
	bad.Key[0] ^= 1
	if err := b.GetFile(ctx, &bad, filepath.Join(dir, "bad.bin"), nil); !errors.Is(err, ErrFileIntegrity) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.bin")); err == nil {
		t.Error("tampered file was saved")
	}
}
