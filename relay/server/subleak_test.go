package server_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relaytest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/server/store"
)

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
	srv, addr := relaytest.Start(t, server.Config{DataDir: dir, Store: st})
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

	open, queueSubs, logSubs := server.HubCounts(srv)
	if open == 0 && (logSubs > 0 || queueSubs > 0) {
		t.Fatalf("connection closed, but the hub still holds %d log and %d queue subscription(s) of it (leaked conn)", logSubs, queueSubs)
	}
}
