package main

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relayproc"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server/store"
)

// TestCrash runs the relay as a process under concurrent clients, kills it
// with SIGKILL at random moments, restarts it on the same data, and checks
// that every acknowledged send is delivered, none after its
// acknowledgement, and that every reader sees the same group log. It runs
// on each embedded engine.
func TestCrash(t *testing.T) {
	bin := relayproc.Build(t, ".", "tainikd")
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) { testCrash(t, bin, engine) })
	}
}

func testCrash(t *testing.T, bin, engine string) {
	dir := t.TempDir()
	listen := relayproc.FreeAddr(t)
	p := relayproc.Start(t, bin, dir, listen, "-store", engine)
	addr := p.Addr
	ctx := testContext(t, 2*time.Minute)

	dial := func() *client.Client {
		c, err := client.Dial(ctx, addr, client.Options{MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	const nRecipients, nSenders, nAppenders = 4, 8, 4
	recipients := make([]recipient, nRecipients)
	for i := range recipients {
		c := dial()
		recipients[i] = recipient{c, subscribedQueue(t, ctx, c)}
	}
	gid := []byte("crash-group")
	logc := dial()
	lg, err := logc.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}

	work, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ackedSend := map[relay.MsgID]int{} // id → recipient
	delivered := map[relay.MsgID]bool{}
	// ackedRecv maps an acknowledged id to how many pushes its recipient
	// had taken or had waiting when the acknowledgement was answered:
	// pushes up to that count were sent before the relay answered the ack
	// (a redelivery after a reconnect may be among them) and are allowed;
	// a later push of that id is a violation.
	ackedRecv := map[relay.MsgID]int{}
	var violations []string
	appended := map[uint64][]byte{} // seq → message

	for s := range nSenders {
		c := dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendUntilDone(work, c, s, 500, recipients, func(n int) int { return n % nRecipients }, func(id relay.MsgID, r int) {
				mu.Lock()
				ackedSend[id] = r
				mu.Unlock()
			})
		}()
	}
	for _, r := range recipients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			taken := 0
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
				id := p.Message.MsgID
				taken++
				mu.Lock()
				if bound, ok := ackedRecv[id]; ok && taken > bound {
					violations = append(violations, fmt.Sprintf("message %x delivered after its acknowledgement", id))
				}
				delivered[id] = true
				mu.Unlock()
				if retryUntilDone(work, func(ctx context.Context) error {
					err := r.c.Ack(ctx, r.q, id)
					if errors.Is(err, &relay.Error{Code: relay.CodeNotFound}) {
						return nil // acknowledged before a crash
					}
					return err
				}) {
					mu.Lock()
					ackedRecv[id] = taken + len(r.c.Pushes())
					mu.Unlock()
				}
			}
		}()
	}
	var epoch atomic.Uint64
	for a := range nAppenders {
		c := dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			appendUntilDone(work, c, lg, gid, a, &epoch, func(n int) bool { return a == 0 && n%5 == 0 }, func(seq uint64, msg []byte) {
				mu.Lock()
				appended[seq] = msg
				mu.Unlock()
			})
		}()
	}

	const kills = 3
	for k := range kills {
		// Let the load run, then kill at a random moment.
		time.Sleep(time.Duration(300+mrand.IntN(500)) * time.Millisecond)
		p.Kill()
		p = relayproc.Start(t, bin, dir, listen, "-store", engine)
		if p.Addr != addr {
			t.Fatalf("restart %d: address changed to %s", k, p.Addr)
		}
	}
	time.Sleep(500 * time.Millisecond)
	stopWork()
	wg.Wait()

	// Drain every queue with fresh connections.
	final := dial()
	for _, r := range recipients {
		drainQueue(t, ctx, final, r.q, func(m relay.QueueMessage) {
			if _, ok := ackedRecv[m.MsgID]; ok {
				violations = append(violations, fmt.Sprintf("message %x still queued after its acknowledgement", m.MsgID))
			}
			delivered[m.MsgID] = true
		})
	}
	for _, v := range violations {
		t.Error(v)
	}
	checkDelivered(t, ackedSend, delivered)
	if len(ackedSend) < 100 {
		t.Errorf("only %d sends acknowledged; the load did not run", len(ackedSend))
	}

	// Every reader sees the same log, containing every acknowledged append.
	var orders [][][]byte
	for range 2 {
		orders = append(orders, readLog(t, ctx, dial(), lg))
	}
	checkSameLog(t, orders, appended)
	t.Logf("%d sends acknowledged, %d delivered, %d log entries (%d acknowledged appends), %d kills",
		len(ackedSend), len(delivered), len(orders[0]), len(appended), kills)
	if err := p.Stop(t); err != nil {
		t.Errorf("relay exited with %v after SIGTERM", err)
	}
}
