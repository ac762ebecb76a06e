package server_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/server/store"
)

// bus is an in-memory Notifier network: what one node publishes reaches
// every other node's listener, never its own, as with NATS NoEcho.
type bus struct {
	mu        sync.Mutex
	listeners map[*busNotifier]func(server.Wake)
	published []server.Wake
}

type busNotifier struct{ b *bus }

func (n *busNotifier) Publish(w server.Wake) error {
	n.b.mu.Lock()
	n.b.published = append(n.b.published, w)
	var fns []func(server.Wake)
	for other, fn := range n.b.listeners {
		if other != n {
			fns = append(fns, fn)
		}
	}
	n.b.mu.Unlock()
	for _, fn := range fns {
		fn(w)
	}
	return nil
}

func (n *busNotifier) Listen(fn func(server.Wake)) error {
	n.b.mu.Lock()
	n.b.listeners[n] = fn
	n.b.mu.Unlock()
	return nil
}

// TestWakeAcrossNodes runs two relays on one store, joined only by a
// Notifier: a send and an append through one reach a subscriber on the
// other, and a WakeAll makes a subscription re-read what it was never
// told about.
func TestWakeAcrossNodes(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &bus{listeners: map[*busNotifier]func(server.Wake){}}
	na, nb := &busNotifier{b}, &busNotifier{b}
	ra := startRelay(t, server.Config{Store: st, Notifier: na})
	rb := startRelay(t, server.Config{Store: st, Notifier: nb})
	ctx := testCtx(t)
	a, c := dial(t, ra.addr), dial(t, rb.addr)

	q, err := a.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	gid := []byte("wake-group")
	lg, err := a.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SubscribeLog(ctx, lg, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, q.SenderID, msgID(1), []byte("one"), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Append(ctx, lg, mlsMessage(gid, 0, relay.ContentTypeApplication)); err != nil {
		t.Fatal(err)
	}
	expectPushes := func(wantQueue relay.MsgID, wantSeq uint64) {
		t.Helper()
		gotQueue, gotLog := false, false
		for !gotQueue || !gotLog {
			select {
			case m := <-a.Pushes():
				switch p := m.(type) {
				case *relay.QueuePush:
					gotQueue = gotQueue || p.Message.MsgID == wantQueue
				case *relay.LogPush:
					gotLog = gotLog || p.Entry.Seq == wantSeq
				}
			case <-ctx.Done():
				t.Fatalf("pushes across nodes: queue %v, log %v", gotQueue, gotLog)
			}
		}
	}
	expectPushes(msgID(1), 1)

	// Writes straight into the store announce nothing; WakeAll (what
	// natswake sends itself after a reconnect) finds them.
	sq, err := st.QueueBySender(ctx, q.SenderID)
	if err != nil {
		t.Fatal(err)
	}
	padded, _ := relay.Pad([]byte("two"))
	if _, _, err := st.AddMessage(ctx, sq.Key, store.Message{ID: msgID(2), Payload: padded, Expires: time.Now().Add(time.Hour)}, 100); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AppendLog(ctx, lg.ID, store.Entry{Epoch: 0, Message: mlsMessage(gid, 0, relay.ContentTypeApplication), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	wakeA := b.listeners[na]
	published := slices.Clone(b.published)
	b.mu.Unlock()
	wakeA(server.Wake{Kind: server.WakeAll})
	expectPushes(msgID(2), 2)

	// The queue's wake-ups name it by its wake key, never by the key
	// the store (and a copy of the database) knows it by.
	queueWakes := 0
	for _, w := range published {
		if w.Kind == server.WakeQueue {
			queueWakes++
			if w.Key != server.QueueWakeKey(sq.Key) {
				t.Errorf("a queue wake-up carries %x, not the queue's wake key", w.Key[:4])
			}
		}
	}
	if queueWakes == 0 {
		t.Error("no queue wake-up was published")
	}
	// A node from before the wake keys sends the store key; it is still
	// understood.
	if _, _, err := st.AddMessage(ctx, sq.Key, store.Message{ID: msgID(3), Payload: padded, Expires: time.Now().Add(time.Hour)}, 100); err != nil {
		t.Fatal(err)
	}
	wakeA(server.Wake{Kind: server.WakeQueue, Key: sq.Key})
	select {
	case m := <-a.Pushes():
		if p, ok := m.(*relay.QueuePush); !ok || p.Message.MsgID != msgID(3) {
			t.Fatalf("push %+v, want message 3", m)
		}
	case <-ctx.Done():
		t.Fatal("a wake-up with the store key woke nobody")
	}
}
