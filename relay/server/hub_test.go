package server

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server/store"
)

func testMsgID(n int) relay.MsgID {
	var id relay.MsgID
	binary.BigEndian.PutUint64(id[:], uint64(n))
	return id
}

// TestAckedEarlyBounded: a client that acknowledges ids it was never
// pushed cannot make its subscription remember more than maxAckedEarly of
// them; the newest are kept, an id added again survives the eviction of
// its older slot, and an id counts only until its time.
func TestAckedEarlyBounded(t *testing.T) {
	sub := &queueSub{}
	now := time.Now()
	until := now.Add(time.Minute)
	const n = 5*maxAckedEarly + 7
	for i := range n {
		sub.ackedEarlyAdd(testMsgID(i), until)
	}
	if len(sub.ackedEarly) != maxAckedEarly || len(sub.ackedRing) != maxAckedEarly {
		t.Fatalf("remembers %d ids in a ring of %d, want %d", len(sub.ackedEarly), len(sub.ackedRing), maxAckedEarly)
	}
	for i := range n {
		_, ok := sub.ackedEarly[testMsgID(i)]
		if want := i >= n-maxAckedEarly; ok != want {
			t.Fatalf("id %d remembered %v, want %v", i, ok, want)
		}
	}

	// The oldest id now is n-maxAckedEarly; added again, it outlives
	// its first slot.
	again := testMsgID(n - maxAckedEarly)
	sub.ackedEarlyAdd(again, until.Add(time.Second))
	sub.ackedEarlyAdd(testMsgID(n), until)
	if !sub.ackedEarlyTake(again, now) {
		t.Error("an id added again was forgotten with its older slot")
	}
	if sub.ackedEarlyTake(again, now) {
		t.Error("an id counts twice")
	}
	if len(sub.ackedEarly) > maxAckedEarly {
		t.Errorf("remembers %d ids, more than %d", len(sub.ackedEarly), maxAckedEarly)
	}

	// Past its time an early acknowledgement no longer counts.
	last := testMsgID(n)
	if sub.ackedEarlyTake(last, until) {
		t.Error("an early acknowledgement counted past its time")
	}
}

// slowLookups makes queue and log lookups slow on demand.
type slowLookups struct {
	store.Store
	slow atomic.Bool
}

func (s *slowLookups) Log(ctx context.Context, id relay.ID) (store.Log, error) {
	if s.slow.Load() {
		time.Sleep(300 * time.Millisecond) // the lookup is slow; the client hangs up meanwhile
	}
	return s.Store.Log(ctx, id)
}

func (s *slowLookups) QueueByRecipient(ctx context.Context, rid relay.ID) (store.Queue, error) {
	if s.slow.Load() {
		time.Sleep(300 * time.Millisecond)
	}
	return s.Store.QueueByRecipient(ctx, rid)
}

// TestSubscribeAfterCloseRegistersNothing: a subscribe whose handler is
// still looking the queue or log up when the client hangs up must not
// register the subscription after the connection was cleaned up.
func TestSubscribeAfterCloseRegistersNothing(t *testing.T) {
	dir := t.TempDir()
	emb, err := store.OpenEmbedded("", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() }) // after the relay's Shutdown
	st := &slowLookups{Store: emb}
	srv, addr := StartForTest(t, Config{DataDir: dir, Store: st})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.CreateLog(ctx, []byte("group"), 0)
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	st.slow.Store(true)
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	go c.SubscribeLog(sctx, l, 1)
	go c.Subscribe(sctx, q)
	time.Sleep(50 * time.Millisecond) // requests are on the relay, handlers in the slow lookup
	c.Close()
	scancel()
	time.Sleep(time.Second) // handlers finish; the connection is long cleaned up

	srv.mu.Lock()
	open := len(srv.conns)
	srv.mu.Unlock()
	srv.hub.mu.Lock()
	logSubs := len(srv.hub.logs[l.ID])
	queueSubs := len(srv.hub.queues)
	srv.hub.mu.Unlock()
	if open == 0 && (logSubs > 0 || queueSubs > 0) {
		t.Fatalf("connection closed, but the hub still holds %d log and %d queue subscription(s) of it (leaked conn)", logSubs, queueSubs)
	}
}
