package natswake_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relaytest"
	"github.com/tainik/tainik/internal/servicetest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/server/natswake"
	"github.com/tainik/tainik/relay/server/store/postgres"
)

// startNode starts an in-process relay node on the shared database and
// NATS prefix and returns its address.
func startNode(t *testing.T, dbURL, natsURL, prefix string) string {
	t.Helper()
	st, err := postgres.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	n, err := natswake.Dial(natsURL, prefix, nil)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the relay's Shutdown
		n.Close()
		st.Close()
	})
	_, addr := relaytest.Start(t, server.Config{Store: st, Notifier: n})
	return addr
}

func dial(t *testing.T, ctx context.Context, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mlsMessage(groupID []byte, epoch uint64, contentType uint8, body string) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, relay.WireFormatPrivateMessage)
	b = relay.AppendVarint(b, uint32(len(groupID)))
	b = append(b, groupID...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, contentType)
	return append(b, body...)
}

// TestCrossNodePush sends through one node and expects the push on a
// subscriber connected to another: the only path between them is the
// wake-up over NATS (the subscriber's node never polls).
func TestCrossNodePush(t *testing.T) {
	dbURL := servicetest.Postgres(t)
	natsURL, prefix := servicetest.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := dial(t, ctx, startNode(t, dbURL, natsURL, prefix))
	b := dial(t, ctx, startNode(t, dbURL, natsURL, prefix))

	q, err := a.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	gid := []byte("cross-node")
	lg, err := a.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SubscribeLog(ctx, lg, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(ctx, q.SenderID, relay.MsgID{1}, []byte("hello from b"), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Append(ctx, lg, mlsMessage(gid, 0, relay.ContentTypeCommit, "commit 0")); err != nil {
		t.Fatal(err)
	}
	gotQueue, gotLog := false, false
	for !gotQueue || !gotLog {
		select {
		case m := <-a.Pushes():
			switch p := m.(type) {
			case *relay.QueuePush:
				if p.Message.MsgID != (relay.MsgID{1}) {
					t.Fatalf("pushed message %x", p.Message.MsgID)
				}
				gotQueue = true
			case *relay.LogPush:
				if p.Entry.Seq != 1 {
					t.Fatalf("pushed log entry %d", p.Entry.Seq)
				}
				gotLog = true
			}
		case <-ctx.Done():
			t.Fatalf("no push across nodes (queue %v, log %v)", gotQueue, gotLog)
		}
	}
}

// TestPrefixChecked: a prefix with a wildcard, a space or an empty token
// would subscribe to other relays' wake-ups, or to none; it is refused
// before connecting.
func TestPrefixChecked(t *testing.T) {
	for _, p := range []string{"", "*", "relay.>", "a b", ".relay", "relay.", "a..b"} {
		if _, err := natswake.Dial("nats://127.0.0.1:1", p, nil); err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("prefix %q: %v, want it refused", p, err)
		}
	}
}
