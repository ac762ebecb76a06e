package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relaytest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/blobdir"
)

type testRelay struct {
	srv  *server.Server
	addr string
}

func startRelay(t *testing.T, cfg server.Config) *testRelay {
	t.Helper()
	srv, addr := relaytest.Start(t, cfg)
	return &testRelay{srv: srv, addr: addr}
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code relay.Code) *relay.Error {
	t.Helper()
	var re *relay.Error
	if !errors.As(err, &re) || re.Code != code {
		t.Fatalf("got error %v, want code %d (%s)", err, code, code)
	}
	return re
}

func msgID(n int) relay.MsgID {
	var id relay.MsgID
	binary.BigEndian.PutUint64(id[:], uint64(n))
	return id
}

// subscribedPair dials a recipient and a sender, and has the recipient
// create a queue and subscribe to it.
func subscribedPair(t *testing.T, r *testRelay) (recv, send *client.Client, q client.Queue) {
	t.Helper()
	ctx := testCtx(t)
	recv, send = dial(t, r.addr), dial(t, r.addr)
	q, err := recv.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	return recv, send, q
}

func nextPush(t *testing.T, c *client.Client) relay.Message {
	t.Helper()
	select {
	case m := <-c.Pushes():
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no push within 10s")
		return nil
	}
}

func TestQueue(t *testing.T) {
	r := startRelay(t, server.Config{})
	ctx := testCtx(t)
	recv, send := dial(t, r.addr), dial(t, r.addr)
	q, err := recv.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if q.RecipientID == q.SenderID {
		t.Fatal("recipient and sender ids are equal")
	}
	if err := send.Send(ctx, q.SenderID, msgID(1), []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	// Sending the same id again is accepted and stored once.
	if err := send.Send(ctx, q.SenderID, msgID(1), []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := recv.Receive(ctx, q)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %d messages, %v", len(msgs), err)
	}
	if got, _ := relay.Unpad(msgs[0].Payload); string(got) != "hello" || len(msgs[0].Payload) != 1024 {
		t.Errorf("got %q in %d bytes", got, len(msgs[0].Payload))
	}
	if err := recv.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	p := nextPush(t, recv).(*relay.QueuePush)
	if p.RecipientID != q.RecipientID || p.Message.MsgID != msgID(1) {
		t.Errorf("push %+v", p)
	}
	send.Send(ctx, q.SenderID, msgID(2), bytes.Repeat([]byte("x"), 2000), nil)
	p = nextPush(t, recv).(*relay.QueuePush)
	if p.Message.MsgID != msgID(2) || len(p.Message.Payload) != 4096 {
		t.Errorf("second push: %x, %d bytes", p.Message.MsgID, len(p.Message.Payload))
	}
	if err := recv.Ack(ctx, q, msgID(1), msgID(2)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, recv.Ack(ctx, q, msgID(1)), relay.CodeNotFound)
	if msgs, _ := recv.Receive(ctx, q); len(msgs) != 0 {
		t.Errorf("%d messages after ack", len(msgs))
	}

	// Lock to a sender key.
	spub, spriv, _ := ed25519.GenerateKey(nil)
	if err := recv.LockQueue(ctx, q, spub); err != nil {
		t.Fatal(err)
	}
	wantCode(t, recv.LockQueue(ctx, q, spub), relay.CodeQueueLocked)
	wantCode(t, send.Send(ctx, q.SenderID, msgID(3), []byte("unsigned"), nil), relay.CodeQueueLocked)
	_, other, _ := ed25519.GenerateKey(nil)
	wantCode(t, send.Send(ctx, q.SenderID, msgID(3), []byte("other key"), other), relay.CodeQueueLocked)
	if err := send.Send(ctx, q.SenderID, msgID(3), []byte("signed"), spriv); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, recv).(*relay.QueuePush); p.Message.MsgID != msgID(3) {
		t.Errorf("push after lock: %x", p.Message.MsgID)
	}

	// Someone else's key cannot act as the recipient.
	bad := q
	_, bad.Key, _ = ed25519.GenerateKey(nil)
	wantCode(t, send.Ack(ctx, bad, msgID(3)), relay.CodeBadSignature)
	wantCode(t, send.DeleteQueue(ctx, bad), relay.CodeBadSignature)

	if err := recv.DeleteQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	wantCode(t, send.Send(ctx, q.SenderID, msgID(4), []byte("gone"), spriv), relay.CodeNotFound)
	wantCode(t, send.Send(ctx, relay.ID{1}, msgID(4), []byte("nobody"), nil), relay.CodeNotFound)
}

func TestContactRateLimit(t *testing.T) {
	r := startRelay(t, server.Config{ContactRate: 0.001, ContactBurst: 3})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	q, err := c.CreateQueue(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Send(ctx, q.SenderID, msgID(i), []byte("hi"), nil); err != nil {
			t.Fatal(err)
		}
	}
	re := wantCode(t, c.Send(ctx, q.SenderID, msgID(9), []byte("hi"), nil), relay.CodeRateLimited)
	if re.Detail == 0 {
		t.Error("no wait in rate limit error")
	}

	pub, _, _ := ed25519.GenerateKey(nil)
	wantCode(t, c.LockQueue(ctx, q, pub), relay.CodeBadRequest)
	// Another address is not affected.
	q2, _ := c.CreateQueue(ctx, true)
	if err := c.Send(ctx, q2.SenderID, msgID(1), []byte("hi"), nil); err != nil {
		t.Fatal(err)
	}
}

// mlsMessage builds an MLS PrivateMessage header followed by random bytes.
func mlsMessage(groupID []byte, epoch uint64, contentType uint8) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, relay.WireFormatPrivateMessage)
	b = relay.AppendVarint(b, uint32(len(groupID)))
	b = append(b, groupID...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, contentType)
	filler := make([]byte, 64)
	rand.Read(filler)
	return append(b, filler...)
}

func TestGroupLog(t *testing.T) {
	r := startRelay(t, server.Config{})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	gid := []byte("group-1")
	l, err := c.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seq, epoch, err := c.Append(ctx, l, mlsMessage(gid, 0, relay.ContentTypeApplication)); err != nil || seq != 1 || epoch != 0 {
		t.Fatalf("append app: %d %d %v", seq, epoch, err)
	}
	if seq, epoch, err := c.Append(ctx, l, mlsMessage(gid, 0, relay.ContentTypeCommit)); err != nil || seq != 2 || epoch != 1 {
		t.Fatalf("append commit: %d %d %v", seq, epoch, err)
	}
	_, _, err = c.Append(ctx, l, mlsMessage(gid, 0, relay.ContentTypeCommit))
	if re := wantCode(t, err, relay.CodeStaleEpoch); re.Detail != 1 {
		t.Errorf("stale epoch detail %d, want 1", re.Detail)
	}
	_, _, err = c.Append(ctx, l, mlsMessage(gid, 5, relay.ContentTypeApplication))
	wantCode(t, err, relay.CodeFutureEpoch)
	_, _, err = c.Append(ctx, l, mlsMessage([]byte("other"), 1, relay.ContentTypeCommit))
	wantCode(t, err, relay.CodeBadMessage)
	_, _, err = c.Append(ctx, l, []byte("not mls"))
	wantCode(t, err, relay.CodeBadMessage)
	_, _, err = c.Append(ctx, client.Log{ID: l.ID, Token: relay.ID{1}}, mlsMessage(gid, 1, relay.ContentTypeCommit))
	wantCode(t, err, relay.CodeAuth)
	_, _, err = c.Append(ctx, client.Log{ID: relay.ID{1}, Token: l.Token}, mlsMessage(gid, 1, relay.ContentTypeCommit))
	wantCode(t, err, relay.CodeNotFound)

	sub := dial(t, r.addr)
	if err := sub.SubscribeLog(ctx, l, 2); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, sub).(*relay.LogPush); p.Entry.Seq != 2 {
		t.Errorf("first pushed seq %d, want 2", p.Entry.Seq)
	}
	c.Append(ctx, l, mlsMessage(gid, 1, relay.ContentTypeProposal))
	if p := nextPush(t, sub).(*relay.LogPush); p.Entry.Seq != 3 {
		t.Errorf("pushed seq %d, want 3", p.Entry.Seq)
	}
	got, err := c.Read(ctx, l, 1)
	if err != nil || len(got.Entries) != 3 || got.Epoch != 1 || got.More {
		t.Fatalf("Read: %+v %v", got, err)
	}
}

// TestCommitRace is the ordering rule: many members commit for the same
// epoch at once; exactly one wins each round, and every reader sees the
// same order.
func TestCommitRace(t *testing.T) {
	r := startRelay(t, server.Config{})
	ctx := testCtx(t)
	const members, rounds = 16, 5
	gid := []byte("race")
	creator := dial(t, r.addr)
	l, err := creator.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*client.Client, members)
	for i := range clients {
		clients[i] = dial(t, r.addr)
	}
	for round := range uint64(rounds) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, stale := 0, 0
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := mlsMessage(gid, round, relay.ContentTypeCommit)
				<-start
				_, epoch, err := c.Append(ctx, l, msg)
				mu.Lock()
				defer mu.Unlock()
				var re *relay.Error
				switch {
				case err == nil && epoch == round+1:
					won++
				case errors.As(err, &re) && re.Code == relay.CodeStaleEpoch && re.Detail == round+1:
					stale++
				default:
					t.Errorf("round %d: epoch %d err %v", round, epoch, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if won != 1 || stale != members-1 {
			t.Fatalf("round %d: %d accepted, %d stale; want 1 and %d", round, won, stale, members-1)
		}
	}
	var first [][]byte
	for i, c := range clients {
		got, err := c.Read(ctx, l, 0)
		if err != nil || len(got.Entries) != rounds || got.Epoch != rounds {
			t.Fatalf("reader %d: %+v %v", i, got, err)
		}
		var order [][]byte
		for _, e := range got.Entries {
			order = append(order, e.Message)
		}
		if first == nil {
			first = order
			continue
		}
		for j := range order {
			if !bytes.Equal(order[j], first[j]) {
				t.Fatalf("reader %d sees a different entry at %d", i, j)
			}
		}
	}
}

func TestBlob(t *testing.T) {
	r := startRelay(t, server.Config{MaxBlobSize: 1 << 20})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	data := make([]byte, 200_000)
	rand.Read(data)
	b, err := c.Upload(ctx, client.Blob{}, data[:0:0])
	if err == nil {
		t.Fatal("empty blob accepted")
	}
	b, err = c.CreateBlob(ctx, uint64(len(data)), sha256Sum(data))
	if err != nil {
		t.Fatal(err)
	}
	// Upload part, "crash", resume from the relay's length.
	if _, err := c.PutChunk(ctx, b, 0, data[:70_000][:relay.MaxChunk]); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutChunk(ctx, b, 10, data[10:20])
	if re := wantCode(t, err, relay.CodeBadOffset); re.Detail != relay.MaxChunk {
		t.Errorf("bad offset detail %d", re.Detail)
	}
	if _, err := c.Download(ctx, b.DownloadToken); err == nil {
		t.Error("incomplete blob downloaded")
	}
	if _, err := c.Upload(ctx, b, data); err != nil {
		t.Fatal(err)
	}
	got, err := dial(t, r.addr).Download(ctx, b.DownloadToken)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Download: %d bytes, %v", len(got), err)
	}
	// Integrity: wrong digest.
	b2, _ := c.CreateBlob(ctx, 10, [32]byte{1})
	_, err = c.PutChunk(ctx, b2, 0, []byte("0123456789"))
	wantCode(t, err, relay.CodeIntegrity)
	_, err = c.BlobStatus(ctx, b2)
	wantCode(t, err, relay.CodeNotFound)
	_, err = c.CreateBlob(ctx, 2<<20, [32]byte{})
	wantCode(t, err, relay.CodeTooLarge)
	_, err = c.Download(ctx, b.UploadToken)
	wantCode(t, err, relay.CodeNotFound)
}

func TestPinning(t *testing.T) {
	r := startRelay(t, server.Config{})
	a, _ := relay.ParseAddress(r.addr)
	a.Fingerprint = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Dial(ctx, a.String(), client.Options{}); err == nil {
		t.Fatal("dial with the wrong fingerprint succeeded")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	r := startRelay(t, server.Config{})
	getHealthAndMetrics(t, r, "tainik_relay_store_commits_total ")
}

// The store's counters are in /metrics also when a blob store wraps the
// embedded store (-blobs).
func TestStoreMetricsWithBlobDir(t *testing.T) {
	emb, err := store.OpenEmbedded("pebble", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := blobdir.New(emb, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := startRelay(t, server.Config{Store: st})
	getHealthAndMetrics(t, r, "tainik_relay_store_commits_total ")
}

func getHealthAndMetrics(t *testing.T, r *testRelay, metric string) {
	t.Helper()
	a, _ := relay.ParseAddress(r.addr)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": metric} {
		resp, err := hc.Get("https://" + a.HostPort + path)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("%s: %d %q", path, resp.StatusCode, buf.String())
		}
	}
}

func TestReconnectResubscribe(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	addr := srv.Address(ln.Addr()).String()
	ctx := testCtx(t)
	c, err := client.Dial(ctx, addr, client.Options{MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q, _ := c.CreateQueue(ctx, false)
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	srv.Shutdown(sctx)
	cancel()

	srv2, err := server.New(server.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The client must find the relay again on the same address; the port
	// may take a moment to be free after the shutdown.
	var ln2 net.Listener
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ln2, err = net.Listen("tcp", ln.Addr().String()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot listen on %s again after the shutdown: %v", ln.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond) // retry interval
	}
	go srv2.Serve(ln2)
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv2.Shutdown(sctx)
	}()
	if srv2.Address(ln2.Addr()).String() != addr {
		t.Fatal("relay address changed across restarts")
	}
	other := dial(t, addr)
	if err := other.Send(ctx, q.SenderID, msgID(7), []byte("after restart"), nil); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, c).(*relay.QueuePush); p.Message.MsgID != msgID(7) {
		t.Errorf("push after reconnect: %x", p.Message.MsgID)
	}
}

func TestQuotaAndExpiry(t *testing.T) {
	r := startRelay(t, server.Config{MaxQueueMessages: 2, MessageTTL: 100 * time.Millisecond, ExpireInterval: 20 * time.Millisecond})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	q, _ := c.CreateQueue(ctx, false)
	for i := range 2 {
		if err := c.Send(ctx, q.SenderID, msgID(i), []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, c.Send(ctx, q.SenderID, msgID(3), []byte("x"), nil), relay.CodeQuotaExceeded)
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, err := c.Receive(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("messages did not expire")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	// Expired messages free the quota.
	if err := c.Send(ctx, q.SenderID, msgID(4), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestLogEntryTTL: an entry's TTL shortens its lifetime, and is capped at
// the log retention; entries without one keep the retention.
func TestLogEntryTTL(t *testing.T) {
	for _, tt := range []struct {
		name      string
		retention time.Duration
		ttl       time.Duration
	}{
		{"ttl", time.Hour, time.Second},
		{"capped", time.Second, 1000 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startRelay(t, server.Config{LogRetention: tt.retention, ExpireInterval: 20 * time.Millisecond})
			ctx := testCtx(t)
			c := dial(t, r.addr)
			gid := []byte("group-ttl")
			l, err := c.CreateLog(ctx, gid, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Append(ctx, l, mlsMessage(gid, 0, relay.ContentTypeCommit)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.AppendExpiring(ctx, l, mlsMessage(gid, 1, relay.ContentTypeApplication), tt.ttl); err != nil {
				t.Fatal(err)
			}
			want := []uint64{1}
			if tt.retention < time.Hour {
				want = nil // the commit has the short retention too
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				r, err := c.Read(ctx, l, 1)
				if err != nil {
					t.Fatal(err)
				}
				var got []uint64
				for _, e := range r.Entries {
					got = append(got, e.Seq)
				}
				if !slices.Contains(got, 2) {
					if !slices.Equal(got, want) {
						t.Errorf("entries %v, want %v", got, want)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("entry with ttl %v still served: %v", tt.ttl, got)
				}
				time.Sleep(10 * time.Millisecond) // polling interval
			}
		})
	}
}

func TestACMEAddress(t *testing.T) {
	srv, err := server.New(server.Config{DataDir: t.TempDir(), ACMEDomain: "relay.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := &net.TCPAddr{IP: net.IPv4zero, Port: 443}
	if got, want := srv.Address(addr).String(), "tainik://relay.example.org:443"; got != want {
		t.Errorf("address %q, want %q", got, want)
	}
	if srv.Fingerprint() != "" {
		t.Error("ACME relay has a pinned fingerprint")
	}
}

func TestAddressStable(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for range 2 {
		srv, err := server.New(server.Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, srv.Address(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7443}).String())
		srv.Shutdown(context.Background())
	}
	if addrs[0] != addrs[1] {
		t.Errorf("address changed across restarts: %s, %s", addrs[0], addrs[1])
	}
	if _, err := relay.ParseAddress(addrs[0]); err != nil {
		t.Errorf("relay printed an address it cannot parse: %v", err)
	}
}

// TestParkedConnections: connections that go quiet are parked (no read
// loop); a parked connection still gets pushes, answers requests when the
// client speaks again, and is cleaned up when the client leaves.
func TestParkedConnections(t *testing.T) {
	r := startRelay(t, server.Config{IdleAfter: 20 * time.Millisecond})
	ctx := testCtx(t)
	recv, send, q := subscribedPair(t, r)
	waitMetric(t, r, "tainik_relay_connections_parked", 2)
	// A push to a parked connection, from a request on another parked
	// connection.
	if err := send.Send(ctx, q.SenderID, msgID(1), []byte("to a parked connection"), nil); err != nil {
		t.Fatal(err)
	}
	p, ok := nextPush(t, recv).(*relay.QueuePush)
	if !ok || p.Message.MsgID != msgID(1) {
		t.Fatalf("push %v", p)
	}
	if err := recv.Ack(ctx, q, msgID(1)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, r, "tainik_relay_connections_parked", 2)
	send.Close()
	waitMetric(t, r, "tainik_relay_connections", 1)
	waitMetric(t, r, "tainik_relay_connections_parked", 1)
}

// waitMetric polls /metrics until name has value want.
func waitMetric(t *testing.T, r *testRelay, name string, want int) {
	t.Helper()
	a, err := relay.ParseAddress(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := hc.Get("https://" + a.HostPort + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, name+" "); ok {
					last = v
					if v == strconv.Itoa(want) {
						return
					}
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s = %s, want %d", name, last, want)
}

// TestContactLockAfterSubscribe: a contact address cannot be locked,
// whether or not the connection subscribed to it first.
func TestContactLockAfterSubscribe(t *testing.T) {
	r := startRelay(t, server.Config{})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	pub, _, _ := ed25519.GenerateKey(nil)

	q1, err := c.CreateQueue(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LockQueue(ctx, q1, pub); err == nil {
		t.Fatal("control: contact queue locked without subscription")
	}
	q2, err := c.CreateQueue(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, q2); err != nil {
		t.Fatal(err)
	}
	if err := c.LockQueue(ctx, q2, pub); err == nil {
		t.Fatal("a contact address was locked after the connection subscribed to it")
	}
}

// TestKeepalivePings: a client that sends only WebSocket pings (a
// keepalive, RFC 6455 Section 5.5.2) must not be disconnected.
func TestKeepalivePings(t *testing.T) {
	r := startRelay(t, server.Config{ReadTimeout: 300 * time.Millisecond, IdleAfter: 10 * time.Second})
	rc := rawDial(t, r.addr)
	frames := make(chan error, 16)
	go func() {
		for {
			_, _, err := rc.ws.Read(context.Background())
			frames <- err
			if err != nil {
				return
			}
		}
	}()
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := rc.ws.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d after %v: %v", i, time.Duration(i+1)*100*time.Millisecond, err)
		}
	}
}

// TestShutdownStopsPoller: Shutdown must stop the poller goroutine.
func TestShutdownStopsPoller(t *testing.T) {
	pollers := func() int {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		return strings.Count(string(buf[:n]), "(*poller).run")
	}
	before := pollers()
	for i := 0; i < 5; i++ {
		srv, err := server.New(server.Config{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
	// Shutdown waits for the poller, so no polling is needed.
	if k := pollers() - before; k > 0 {
		t.Fatalf("%d poller goroutines still running after Shutdown", k)
	}
}

// countingStore counts the pusher's reads of queue messages.
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (s *countingStore) Messages(ctx context.Context, key relay.ID, after uint64, max, maxBytes int) ([]store.Message, error) {
	s.reads.Add(1)
	return s.Store.Messages(ctx, key, after, max, maxBytes)
}

// TestPushFromInbox checks that a subscriber who keeps up is served from
// what this node stored, without reading the store back for every
// message, and that one who falls behind the unacknowledged window gets
// the rest from the store once it acknowledges.
func TestPushFromInbox(t *testing.T) {
	emb, err := store.OpenEmbedded("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	st := &countingStore{Store: emb}
	r := startRelay(t, server.Config{Store: st})
	ctx := testCtx(t)
	recv, send, q := subscribedPair(t, r)
	const live = 40
	for i := range live {
		if err := send.Send(ctx, q.SenderID, msgID(i), []byte("live"), nil); err != nil {
			t.Fatal(err)
		}
		p := nextPush(t, recv).(*relay.QueuePush)
		if p.Message.MsgID != msgID(i) {
			t.Fatalf("push %d carries %x", i, p.Message.MsgID)
		}
		if err := recv.Ack(ctx, q, p.Message.MsgID); err != nil {
			t.Fatal(err)
		}
	}
	// The subscription's first read, and at most a few more where an
	// acknowledgement raced a push.
	if n := st.reads.Load(); n > 5 {
		t.Errorf("the pusher read the store %d times for %d messages it stored itself", n, live)
	}

	// Past the window of unacknowledged pushes the inbox stops taking
	// messages; they must come from the store.
	const backlog = 300
	for i := live; i < live+backlog; i++ {
		if err := send.Send(ctx, q.SenderID, msgID(i), []byte("backlog"), nil); err != nil {
			t.Fatal(err)
		}
	}
	next := live
	for next < live+backlog {
		var ids []relay.MsgID
		for len(ids) == 0 || len(recv.Pushes()) > 0 {
			p := nextPush(t, recv).(*relay.QueuePush)
			if p.Message.MsgID != msgID(next) {
				t.Fatalf("push carries %x, want message %d", p.Message.MsgID, next)
			}
			ids = append(ids, p.Message.MsgID)
			next++
		}
		if err := recv.Ack(ctx, q, ids...); err != nil {
			t.Fatal(err)
		}
	}
	if msgs, err := recv.Receive(ctx, q); err != nil || len(msgs) != 0 {
		t.Fatalf("after all acknowledgements: %d messages, %v", len(msgs), err)
	}

	// Concurrent senders finish out of order, so the inbox sees gaps in
	// the sequence numbers; every message must still arrive.
	const senders, each = 16, 25
	base := live + backlog
	var wg sync.WaitGroup
	for s := range senders {
		c := dial(t, r.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := c.Send(ctx, q.SenderID, msgID(base+s*each+i), []byte("racing"), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := map[relay.MsgID]bool{}
	for len(got) < senders*each {
		p := nextPush(t, recv).(*relay.QueuePush)
		got[p.Message.MsgID] = true
		if err := recv.Ack(ctx, q, p.Message.MsgID); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// TestRetryAfterDedupWindowPushed: an id acknowledged before the
// subscription pushed it is skipped only briefly. Once the dedup window
// has passed, a sender's retry of it is a new message, and the live
// subscription pushes it.
func TestRetryAfterDedupWindowPushed(t *testing.T) {
	r := startRelay(t, server.Config{DedupWindow: 100 * time.Millisecond, ExpireInterval: 20 * time.Millisecond})
	ctx := testCtx(t)
	recv, send, q := subscribedPair(t, r)
	// Fill the window of unacknowledged pushes, so that the next
	// message waits in the store.
	const window = 256
	for i := range window {
		if err := send.Send(ctx, q.SenderID, msgID(i), []byte("fill"), nil); err != nil {
			t.Fatal(err)
		}
	}
	var ids []relay.MsgID
	for range window {
		ids = append(ids, nextPush(t, recv).(*relay.QueuePush).Message.MsgID)
	}
	x := msgID(1000)
	if err := send.Send(ctx, q.SenderID, x, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	// The recipient got X another way and acknowledges it before the
	// subscription pushed it.
	if err := recv.Ack(ctx, q, x); err != nil {
		t.Fatal(err)
	}
	if err := recv.Ack(ctx, q, ids...); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-recv.Pushes():
		t.Fatalf("push of %x after its acknowledgement", m.(*relay.QueuePush).Message.MsgID)
	case <-time.After(300 * time.Millisecond):
	}
	// The window has passed and the sweep ran: the retry is new.
	if err := send.Send(ctx, q.SenderID, x, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if p := nextPush(t, recv).(*relay.QueuePush); p.Message.MsgID != x {
		t.Fatalf("push of %x, want the retry", p.Message.MsgID)
	}
}

// TestConfigRefusesNegative: a negative setting is refused with a message
// that names it, instead of expiring everything at once or panicking.
func TestConfigRefusesNegative(t *testing.T) {
	for _, c := range []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{DedupWindow: -time.Hour}, "-dedup-window"},
		{server.Config{MessageTTL: -time.Second}, "-message-ttl"},
		{server.Config{ExpireInterval: -time.Second}, "expiry interval"},
		{server.Config{MaxQueueMessages: -1}, "-max-queue-messages"},
		{server.Config{ContactRate: -0.5}, "-contact-rate"},
	} {
		c.cfg.DataDir = t.TempDir()
		srv, err := server.New(c.cfg)
		if err == nil {
			srv.Shutdown(context.Background())
			t.Errorf("%+v: accepted", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "negative") {
			t.Errorf("error %q does not name %s as negative", err, c.want)
		}
	}
}

// TestExpiredBlobGone: a blob past its time to live is not served, even
// before the expiry sweep deletes it.
func TestExpiredBlobGone(t *testing.T) {
	r := startRelay(t, server.Config{BlobTTL: 200 * time.Millisecond, ExpireInterval: time.Hour})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	data := []byte("short-lived")
	b, err := c.Upload(ctx, client.Blob{}, data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Download(ctx, b.DownloadToken); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download before expiry: %q, %v", got, err)
	}
	time.Sleep(300 * time.Millisecond)
	_, err = c.Download(ctx, b.DownloadToken)
	wantCode(t, err, relay.CodeNotFound)
	_, err = c.BlobStatus(ctx, b)
	wantCode(t, err, relay.CodeNotFound)
}

// TestShutdownTwice: a second Shutdown does nothing (in particular it
// closes no descriptor that may by then belong to something else).
func TestShutdownTwice(t *testing.T) {
	srv := startRelay(t, server.Config{}).srv
	ctx := testCtx(t)
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Take every descriptor number the first Shutdown freed (and more).
	dir := t.TempDir()
	var files []*os.File
	for i := range 64 {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	srv.Shutdown(ctx)
	for i, f := range files {
		if _, err := f.Write([]byte("still open")); err != nil {
			t.Fatalf("file %d, opened after the first Shutdown: %v", i, err)
		}
	}
}

// raceFinalChunk is a store in which, when armed, a good final chunk
// lands right after the relay has looked the blob up for another (bad)
// final chunk: the two raced for the last offset.
type raceFinalChunk struct {
	store.Store
	armed           atomic.Bool
	offset          uint64
	good, hashState []byte
}

func (s *raceFinalChunk) BlobByUpload(ctx context.Context, upload relay.ID) (store.Blob, error) {
	b, err := s.Store.BlobByUpload(ctx, upload)
	if err == nil && s.armed.CompareAndSwap(true, false) {
		if err := s.Store.PutChunk(ctx, upload, s.offset, s.good, s.hashState, true); err != nil {
			return b, err
		}
	}
	return b, err
}

// TestBadFinalChunkKeepsCompletedBlob: a bad last chunk that raced a good
// one does not delete the blob the good one completed.
func TestBadFinalChunkKeepsCompletedBlob(t *testing.T) {
	emb, err := store.OpenEmbedded("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	st := &raceFinalChunk{Store: emb}
	r := startRelay(t, server.Config{Store: st})
	ctx := testCtx(t)
	c := dial(t, r.addr)
	data := bytes.Repeat([]byte("blob"), 100)
	b, err := c.CreateBlob(ctx, uint64(len(data)), sha256Sum(data))
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	if _, err := c.PutChunk(ctx, b, 0, data[:half]); err != nil {
		t.Fatal(err)
	}
	// The good final chunk, with the hash state the relay would store.
	h := sha256.New()
	h.Write(data)
	st.offset, st.good = uint64(half), data[half:]
	st.hashState, _ = h.(encoding.BinaryMarshaler).MarshalBinary()
	st.armed.Store(true)
	bad := bytes.Repeat([]byte("x"), len(data)-half)
	_, err = c.PutChunk(ctx, b, uint64(half), bad)
	wantCode(t, err, relay.CodeBadOffset)
	if got, err := c.Download(ctx, b.DownloadToken); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the completed blob: %d bytes, %v", len(got), err)
	}
}

// TestAckFromPushLoopPastBacklog: a consumer that acknowledges from the
// goroutine that drains Pushes (as the client's docs allow) does not
// deadlock when more than MaxPushBacklog bytes of pushes are waiting.
func TestAckFromPushLoopPastBacklog(t *testing.T) {
	r := startRelay(t, server.Config{})
	ctx := testCtx(t)
	send := dial(t, r.addr)
	c, err := client.Dial(ctx, r.addr, client.Options{PushBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 60<<10)
	var qs []client.Queue
	for i := 0; i < 5; i++ { // 5 × 256 unacked × 60 KiB > MaxPushBacklog
		q, err := c.CreateQueue(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 256; j++ {
			if err := send.Send(ctx, q.SenderID, msgID(i*1000+j), payload, nil); err != nil {
				t.Fatal(err)
			}
		}
		qs = append(qs, q)
	}
	for _, q := range qs {
		if err := c.Subscribe(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // let the pushes arrive and fill the backlog
	// The consumer takes a push and acknowledges it, as the docs allow.
	var p *relay.QueuePush
	select {
	case m := <-c.Pushes():
		p = m.(*relay.QueuePush)
	case <-time.After(5 * time.Second):
		t.Fatal("no push")
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var q client.Queue
	for _, x := range qs {
		if x.RecipientID == p.RecipientID {
			q = x
		}
	}
	// Past the backlog the client drops the connection rather than stop
	// reading: the Ack is answered, or fails with ErrDisconnected and is
	// retried, as callers do; it must not hang.
	retried := false
	for {
		err := c.Ack(actx, q, p.Message.MsgID)
		var re *relay.Error
		if err == nil || (retried && errors.As(err, &re) && re.Code == relay.CodeNotFound) {
			return // done, or done by the attempt whose answer was lost
		}
		if !errors.Is(err, client.ErrDisconnected) {
			t.Fatalf("Ack from the goroutine that drains Pushes, with the backlog full: %v", err)
		}
		retried = true
	}
}

// busyExpiry is a store on which something is always expiring, as on a
// store shared with nodes under steady traffic.
type busyExpiry struct {
	store.Store
	calls atomic.Int64
}

func (s *busyExpiry) Expire(ctx context.Context, now time.Time) (int, error) {
	s.calls.Add(1)
	return 1, nil
}

// TestExpiryLoopBounded: the expiry sweep of one tick stops after a
// bounded number of batches, and does not hold up Shutdown.
func TestExpiryLoopBounded(t *testing.T) {
	emb, err := store.OpenEmbedded("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	st := &busyExpiry{Store: emb}
	srv := startRelay(t, server.Config{Store: st, ExpireInterval: 50 * time.Millisecond}).srv
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown waited for an expiry sweep that never ends")
	}
	if n := st.calls.Load(); n == 0 || n > 20*100 {
		t.Errorf("%d Expire calls in about 6 ticks of at most 100 batches", n)
	}
}
