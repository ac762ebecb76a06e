package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relayproc"
	"github.com/tainik/tainik/internal/servicetest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
)

// TestScaleOut runs three relay processes on one PostgreSQL database and
// one NATS server, with one relay key, as behind a load balancer. Clients
// on different nodes exchange queue messages and share a group log; one
// node is SIGKILLed under load and its clients reconnect to the others.
// Every acknowledged send must be delivered, every reader must see the same
// log, and of two commits for one epoch sent through two nodes at once
// exactly one must win.
func TestScaleOut(t *testing.T) {
	dbURL := servicetest.Postgres(t)
	natsURL, prefix := servicetest.NATS(t)
	bin := relayproc.Build(t, ".", "tainikd")
	ctx := testContext(t, 90*time.Second)

	blobs := t.TempDir() // shared by the nodes, as an NFS mount would be
	args := []string{"-store", "postgres", "-postgres", dbURL, "-nats", natsURL, "-nats-prefix", prefix, "-blobs", blobs, "-log-level", "warn"}
	var nodes [3]*relayproc.Proc
	var hostPorts, dirs [3]string
	for i := range nodes {
		dir := t.TempDir()
		dirs[i] = dir
		if i > 0 {
			// Nodes behind one load balancer share one identity.
			key, err := os.ReadFile(filepath.Join(dirs[0], "relay.key"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "relay.key"), key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		nodes[i] = relayproc.Start(t, bin, dir, "127.0.0.1:0", append(args, "-node-id", fmt.Sprint(i))...)
		a, err := relay.ParseAddress(nodes[i].Addr)
		if err != nil {
			t.Fatal(err)
		}
		hostPorts[i] = a.HostPort
	}
	for i := 1; i < 3; i++ {
		a, _ := relay.ParseAddress(nodes[i].Addr)
		b, _ := relay.ParseAddress(nodes[0].Addr)
		if a.Fingerprint != b.Fingerprint {
			t.Fatalf("node %d has fingerprint %s, node 0 %s", i, a.Fingerprint, b.Fingerprint)
		}
	}

	// dial connects to node i; when it is down, the dialer moves on to the
	// next node, as a load balancer's health check would.
	dial := func(i int) *client.Client {
		opts := client.Options{
			MaxBackoff: 200 * time.Millisecond,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				var err error
				for k := range hostPorts {
					var c net.Conn
					if c, err = d.DialContext(ctx, network, hostPorts[(i+k)%len(hostPorts)]); err == nil {
						return c, nil
					}
				}
				return nil, err
			},
		}
		c, err := client.Dial(ctx, nodes[i].Addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("OneCommitPerEpoch", func(t *testing.T) { testConcurrentCommits(t, ctx, dial) })
	t.Run("BlobAcrossNodes", func(t *testing.T) {
		data := make([]byte, 3*relay.MaxChunk+100)
		rand.Read(data)
		b, err := dial(0).CreateBlob(ctx, uint64(len(data)), sha256.Sum256(data))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = dial(1).Upload(ctx, b, data); err != nil {
			t.Fatal(err)
		}
		got, err := dial(2).Download(ctx, b.DownloadToken)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download through another node: %d bytes, %v", len(got), err)
		}
	})

	const nRecipients, nSenders, nAppenders = 6, 6, 3
	recipients := make([]recipient, nRecipients)
	for i := range recipients {
		c := dial(i % 3)
		recipients[i] = recipient{c, subscribedQueue(t, ctx, c)}
	}
	gid := []byte("scale-out-group")
	lg, err := dial(0).CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}

	// One log subscriber per node; the one on node 2 fails over.
	type logSeen struct {
		mu      sync.Mutex
		entries map[uint64][]byte
	}
	logSubs := make([]*logSeen, 3)
	for i := range logSubs {
		c := dial(i)
		if err := c.SubscribeLog(ctx, lg, 1); err != nil {
			t.Fatal(err)
		}
		ls := &logSeen{entries: map[uint64][]byte{}}
		logSubs[i] = ls
		go func() {
			for {
				select {
				case m := <-c.Pushes():
					if p, ok := m.(*relay.LogPush); ok {
						ls.mu.Lock()
						ls.entries[p.Entry.Seq] = p.Entry.Message
						ls.mu.Unlock()
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	work, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ackedSend := map[relay.MsgID]bool{}
	delivered := map[relay.MsgID]bool{}
	appended := map[uint64][]byte{}

	for s := range nSenders {
		// A sender sits on another node than its recipients.
		c := dial((s + 1) % 3)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendUntilDone(work, c, s, 200, recipients, func(n int) int { return (s + n) % nRecipients }, func(id relay.MsgID, _ int) {
				mu.Lock()
				ackedSend[id] = true
				mu.Unlock()
			})
		}()
	}
	for _, r := range recipients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var m relay.Message
				select {
				case m = <-r.c.Pushes():
				case <-work.Done():
					return
				}
				p, ok := m.(*relay.QueuePush)
				if !ok {
					continue
				}
				mu.Lock()
				delivered[p.Message.MsgID] = true
				mu.Unlock()
				retryUntilDone(work, func(ctx context.Context) error {
					err := r.c.Ack(ctx, r.q, p.Message.MsgID)
					if errors.Is(err, &relay.Error{Code: relay.CodeNotFound}) {
						return nil // acknowledged before a failover
					}
					return err
				})
			}
		}()
	}
	var epoch atomic.Uint64
	for a := range nAppenders {
		c := dial(a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			appendUntilDone(work, c, lg, gid, a, &epoch, func(n int) bool { return n%4 == 0 }, func(seq uint64, msg []byte) {
				mu.Lock()
				appended[seq] = msg
				mu.Unlock()
			})
		}()
	}

	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ackedSend)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	waitFor("load before the kill", func() bool { return count() >= 300 })
	nodes[2].Kill()
	before := count()
	waitFor("load after the kill", func() bool { return count() >= before+300 })
	stopWork()
	wg.Wait()

	// Drain every queue through the surviving nodes.
	for i, r := range recipients {
		drainQueue(t, ctx, dial(i%2), r.q, func(m relay.QueueMessage) { delivered[m.MsgID] = true })
	}
	checkDelivered(t, ackedSend, delivered)

	// Readers on both surviving nodes see the same log, containing every
	// acknowledged append.
	var orders [][][]byte
	for i := range 2 {
		orders = append(orders, readLog(t, ctx, dial(i), lg))
	}
	checkSameLog(t, orders, appended)
	// Every log subscriber is pushed the whole log, in the readers'
	// order, whichever node it ended up on.
	for i, ls := range logSubs {
		waitFor(fmt.Sprintf("log subscriber %d to catch up", i), func() bool {
			ls.mu.Lock()
			defer ls.mu.Unlock()
			return len(ls.entries) >= len(orders[0])
		})
		ls.mu.Lock()
		for seq, msg := range ls.entries {
			if seq > uint64(len(orders[0])) || !bytes.Equal(orders[0][seq-1], msg) {
				t.Errorf("log subscriber %d was pushed a different entry at seq %d", i, seq)
			}
		}
		ls.mu.Unlock()
	}
	t.Logf("%d sends acknowledged (%d before the kill), %d delivered, %d log entries (%d acknowledged appends)",
		len(ackedSend), before, len(delivered), len(orders[0]), len(appended))
	for i := range 2 {
		if err := nodes[i].Stop(t); err != nil {
			t.Errorf("node %d exited with %v after SIGTERM", i, err)
		}
	}
}

// testConcurrentCommits has two members commit the same epoch through two
// different nodes at the same moment, many times: each time exactly one
// commit wins.
func testConcurrentCommits(t *testing.T, ctx context.Context, dial func(int) *client.Client) {
	a, b := dial(0), dial(1)
	gid := []byte("race-group")
	lg, err := a.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	for e := range uint64(20) {
		start := make(chan struct{})
		errs := make(chan error, 2)
		for i, c := range []*client.Client{a, b} {
			go func() {
				<-start
				_, _, err := c.Append(ctx, lg, mlsMessage(gid, e, relay.ContentTypeCommit, []byte(fmt.Sprintf("commit %d by %d", e, i))))
				errs <- err
			}()
		}
		close(start)
		won := 0
		for range 2 {
			err := <-errs
			var re *relay.Error
			switch {
			case err == nil:
				won++
			case errors.As(err, &re) && re.Code == relay.CodeStaleEpoch && re.Detail == e+1:
			default:
				t.Fatalf("epoch %d: %v", e, err)
			}
		}
		if won != 1 {
			t.Fatalf("epoch %d: %d commits won, want 1", e, won)
		}
	}
}
