package client_test

// Tests of the client's behaviour when the relay, the network or the
// caller misbehave.

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relaytest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/ws"
)

// dialTracker records raw connections so a test can cut them.
type dialTracker struct {
	mu    sync.Mutex
	conns []net.Conn
	n     atomic.Int32
}

func (d *dialTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.n.Add(1)
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *dialTracker) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// relayAndClient starts a relay and dials it through d, which the test
// may use to cut the connection; the returned address dials more clients.
func relayAndClient(t *testing.T, opts client.Options) (string, *client.Client, *dialTracker) {
	t.Helper()
	addr, stop := startRelay()
	t.Cleanup(stop)
	d := new(dialTracker)
	opts.DialContext = d.dial
	c := mustDial(t, addr, opts)
	return addr, c, d
}

func mustDial(t *testing.T, addr string, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// subscribedQueue creates a queue on c and subscribes to it.
func subscribedQueue(t *testing.T, c *client.Client) client.Queue {
	t.Helper()
	ctx := context.Background()
	q, err := c.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	return q
}

// waitUp retries a harmless request until the client has reconnected.
func waitUp(t *testing.T, c *client.Client) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.CreateBlob(ctx, 1, [32]byte{})
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatal("client never reconnected")
}

// A consumer that acknowledges inside its push loop (the pattern of the
// package example) must not deadlock when more pushes are waiting than
// the Pushes channel holds: the Ack's answer is behind them on the wire.
func TestAckWhilePushesBacklogged(t *testing.T) {
	ctx := context.Background()
	addr, alice, _ := relayAndClient(t, client.Options{PushBuffer: 2})
	bob := mustDial(t, addr, client.Options{})
	q, err := alice.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := bob.Send(ctx, q.SenderID, relay.MsgID{byte(i + 1)}, []byte("m"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	push := (<-alice.Pushes()).(*relay.QueuePush)
	time.Sleep(300 * time.Millisecond) // the other pushes now wait in the client's backlog
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := alice.Ack(actx, q, push.Message.MsgID); err != nil {
		t.Fatalf("Ack inside the push loop: %v (head-of-line block behind undelivered pushes)", err)
	}
}

// A Subscribe that fails (here: ctx already cancelled) leaves an earlier
// successful subscription in the set the client renews, so pushes go on
// after the next reconnect.
func TestFailedResubscribeKeepsSubscription(t *testing.T) {
	ctx := context.Background()
	addr, alice, d := relayAndClient(t, client.Options{})
	bob := mustDial(t, addr, client.Options{})
	q := subscribedQueue(t, alice)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := alice.Subscribe(cctx, q); err == nil {
		t.Fatal("expected an error")
	}
	if !alice.Subscribed(q.RecipientID) {
		t.Fatal("Subscribed is false after a failed second Subscribe")
	}
	d.cut()
	waitUp(t, alice)
	time.Sleep(200 * time.Millisecond) // let resubscription finish
	if err := bob.Send(ctx, q.SenderID, relay.MsgID{9}, []byte("after reconnect"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-alice.Pushes():
	case <-time.After(3 * time.Second):
		t.Fatal("no push after reconnect: the subscription was silently dropped")
	}
}

// A request over the relay's frame limit is refused by the client with
// too_large: sent, it would make the relay close the connection, failing
// every other request in flight, and the caller would retry it.
func TestOversizeRequestRefusedLocally(t *testing.T) {
	ctx := context.Background()
	_, c, d := relayAndClient(t, client.Options{})
	l, err := c.CreateLog(ctx, []byte("g"), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Append(ctx, l, make([]byte, 70*1024))
	var re *relay.Error
	if !errors.As(err, &re) || re.Code != relay.CodeTooLarge {
		waitUp(t, c)
		t.Errorf("Append of 70 KiB: got %v, want a too_large error; dials so far: %d (connection torn down)", err, d.n.Load())
	}
}

func TestEmptyAckRefusedLocally(t *testing.T) {
	ctx := context.Background()
	_, c, d := relayAndClient(t, client.Options{})
	q, _ := c.CreateQueue(ctx, false)
	err := c.Ack(ctx, q) // e.g. a batch loop with nothing to ack
	var re *relay.Error
	if !errors.As(err, &re) || re.Code != relay.CodeBadRequest {
		t.Errorf("Ack with no ids: %v, want bad_request", err)
	}
	waitUp(t, c)
	if d.n.Load() > 1 {
		t.Errorf("Ack with no ids closed the shared connection (dials: %d)", d.n.Load())
	}
}

func TestCreateLogLongGroupID(t *testing.T) {
	ctx := context.Background()
	_, c, _ := relayAndClient(t, client.Options{})
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("CreateLog with a 256-byte group id panicked: %v", r)
		}
	}()
	_, err := c.CreateLog(ctx, []byte(strings.Repeat("g", 256)), 1)
	var re *relay.Error
	if !errors.As(err, &re) || re.Code != relay.CodeBadRequest {
		t.Errorf("CreateLog with a 256-byte group id: %v, want bad_request", err)
	}
}

// fakeRelay is relaytest.Fake: a relay played by handle.
func fakeRelay(t *testing.T, handle func(*ws.Conn)) (string, *atomic.Int32) {
	t.Helper()
	return relaytest.Fake(t, handle)
}

// A relay (or middlebox) that completes the handshake and Hello and then
// drops the connection is redialled with growing delays, not in a tight
// loop.
func TestReconnectBacksOffAfterShortConnections(t *testing.T) {
	addr, accepts := fakeRelay(t, func(wc *ws.Conn) {
		wc.WriteMessages(time.Now().Add(time.Second), relay.Encode(0, &relay.Hello{}))
		wc.Close(ws.StatusGoingAway, "bye")
	})
	c, err := client.Dial(context.Background(), addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	c.Close()
	if n := accepts.Load(); n > 20 {
		t.Errorf("%d connections in one second: no backoff between accept-then-drop reconnects", n)
	}
}

// After the connection is cut, the client renews its queue and log
// subscriptions; the log continues after the last entry pushed.
func TestResubscribeAfterCut(t *testing.T) {
	ctx := context.Background()
	addr, alice, d := relayAndClient(t, client.Options{})
	bob := mustDial(t, addr, client.Options{})
	q := subscribedQueue(t, alice)
	l, _ := bob.CreateLog(ctx, []byte("g"), 1)
	for i := 0; i < 3; i++ {
		bob.Append(ctx, l, mlsApp([]byte("g"), 1))
	}
	if alice.SubscribedLog(l.ID) {
		t.Fatal("SubscribedLog is true before SubscribeLog")
	}
	if err := alice.SubscribeLog(ctx, client.Log(l), 1); err != nil {
		t.Fatal(err)
	}
	if !alice.SubscribedLog(l.ID) {
		t.Fatal("SubscribedLog is false after SubscribeLog")
	}
	for i := 0; i < 3; i++ {
		<-alice.Pushes()
	}
	d.cut()
	waitUp(t, alice)
	time.Sleep(200 * time.Millisecond)
	bob.Send(ctx, q.SenderID, relay.MsgID{9}, []byte("x"), nil)
	bob.Append(ctx, l, mlsApp([]byte("g"), 1))
	var seqs []uint64
	gotQ := false
	timeout := time.After(3 * time.Second)
	for !gotQ || len(seqs) == 0 {
		select {
		case m := <-alice.Pushes():
			switch m := m.(type) {
			case *relay.QueuePush:
				gotQ = true
			case *relay.LogPush:
				seqs = append(seqs, m.Entry.Seq)
			}
		case <-timeout:
			t.Fatalf("queue push %v, log seqs %v", gotQ, seqs)
		}
	}
	if seqs[0] != 4 {
		t.Errorf("log resumed at %d, want 4", seqs[0])
	}
}

func mlsApp(groupID []byte, epoch uint64) []byte {
	b := []byte{0, 1, 0, 2}
	b = relay.AppendVarint(b, uint32(len(groupID)))
	b = append(b, groupID...)
	b = append(b, byte(epoch>>56), byte(epoch>>48), byte(epoch>>40), byte(epoch>>32), byte(epoch>>24), byte(epoch>>16), byte(epoch>>8), byte(epoch))
	return append(b, 1 /* application */, 0xde, 0xad)
}

// Ack splits more ids than one request carries into several, and reports
// not_found only if none was there.
func TestAckManyIDs(t *testing.T) {
	ctx := context.Background()
	_, c, _ := relayAndClient(t, client.Options{})
	q, err := c.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	last := relay.MsgID{0xff, 0xff}
	if err := c.Send(ctx, q.SenderID, last, []byte("the only one"), nil); err != nil {
		t.Fatal(err)
	}
	ids := make([]relay.MsgID, 2*relay.MaxAck+10)
	for i := range ids {
		ids[i] = relay.MsgID{byte(i >> 8), byte(i), 1}
	}
	ids[len(ids)-1] = last
	if err := c.Ack(ctx, q, ids...); err != nil {
		t.Fatalf("Ack of %d ids, the last in the queue: %v", len(ids), err)
	}
	var re *relay.Error
	if err := c.Ack(ctx, q, ids...); !errors.As(err, &re) || re.Code != relay.CodeNotFound {
		t.Fatalf("Ack of ids none of which is there: %v, want not_found", err)
	}
}

// A frame of a type this client does not know (from a newer relay) is
// skipped: the connection stays up.
func TestUnknownPushSkipped(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr, accepts := fakeRelay(t, func(wc *ws.Conn) {
		unknown := relay.Encode(0, &relay.Hello{})
		unknown[1] = 0xee // a type no client knows
		known := relay.Encode(0, &relay.QueuePush{Message: relay.QueueMessage{MsgID: relay.MsgID{7}}})
		wc.WriteMessages(time.Now().Add(time.Second), relay.Encode(0, &relay.Hello{}), unknown, known)
		<-release
		wc.CloseNow()
	})
	c, err := client.Dial(context.Background(), addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case m := <-c.Pushes():
		if p, ok := m.(*relay.QueuePush); !ok || p.Message.MsgID != (relay.MsgID{7}) {
			t.Fatalf("push %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the push after the unknown frame never came")
	}
	if n := accepts.Load(); n != 1 {
		t.Errorf("%d connections: the unknown frame dropped the first", n)
	}
}

// A relay that stops answering (a dead network path: nothing arrives, not
// even the pong) is detected by the keep-alive, and the client connects
// again.
func TestKeepAliveReplacesDeadConnection(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr, accepts := fakeRelay(t, func(wc *ws.Conn) {
		wc.WriteMessages(time.Now().Add(time.Second), relay.Encode(0, &relay.Hello{}))
		<-release // then silence: pings are never read, let alone answered
		wc.CloseNow()
	})
	mustDial(t, addr, client.Options{KeepAlive: 100 * time.Millisecond})
	for deadline := time.Now().Add(5 * time.Second); accepts.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client kept a connection on which nothing arrived")
		}
	}
}

// Against a live relay the pings are answered and the connection stays.
func TestKeepAliveKeepsLiveConnection(t *testing.T) {
	_, c, d := relayAndClient(t, client.Options{KeepAlive: 50 * time.Millisecond})
	time.Sleep(time.Second)
	if _, err := c.CreateBlob(context.Background(), 1, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	if n := d.n.Load(); n != 1 {
		t.Errorf("%d connections in a second of 50 ms keep-alives", n)
	}
}

// A subscription the relay refuses to renew after a reconnect (here the
// queue was deleted meanwhile, from another device) is reported on
// SubscriptionErrors and dropped.
func TestLostSubscriptionReported(t *testing.T) {
	ctx := context.Background()
	addr, alice, d := relayAndClient(t, client.Options{})
	q := subscribedQueue(t, alice)
	if !alice.Subscribed(q.RecipientID) {
		t.Fatal("Subscribed is false after Subscribe")
	}
	other := mustDial(t, addr, client.Options{})
	if err := other.DeleteQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	d.cut()
	select {
	case e := <-alice.SubscriptionErrors():
		var re *relay.Error
		if e.RecipientID != q.RecipientID || !errors.As(e, &re) || re.Code != relay.CodeNotFound {
			t.Fatalf("reported %v for queue %x, want not_found for %x", e, e.RecipientID[:4], q.RecipientID[:4])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a refused resubscription was not reported")
	}
	// Dropped: the next reconnect does not try it again.
	if alice.Subscribed(q.RecipientID) {
		t.Fatal("Subscribed is still true after the relay refused to renew")
	}
	d.cut()
	waitUp(t, alice)
	select {
	case e := <-alice.SubscriptionErrors():
		t.Fatalf("reported again after the next reconnect: %v", e)
	case <-time.After(300 * time.Millisecond):
	}
}

// Pushes keep their order when some wait inside the client for room in
// a small Pushes channel.
func TestPushOrderThroughBacklog(t *testing.T) {
	ctx := context.Background()
	addr, alice, _ := relayAndClient(t, client.Options{PushBuffer: 2})
	bob := mustDial(t, addr, client.Options{})
	q := subscribedQueue(t, alice)
	const n = 60
	for i := range n {
		if err := bob.Send(ctx, q.SenderID, relay.MsgID{0, byte(i)}, []byte("m"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case m := <-alice.Pushes():
			if got := m.(*relay.QueuePush).Message.MsgID; got != (relay.MsgID{0, byte(i)}) {
				t.Fatalf("push %d carries %x", i, got[:2])
			}
			if i%10 == 0 {
				time.Sleep(20 * time.Millisecond) // a slow consumer, now and then
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d pushes", i, n)
		}
	}
}

// Close returns promptly even while a write is stalled because the relay
// stopped reading (its receive window and our send buffer are full).
func TestCloseBehindStalledWrite(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr, _ := fakeRelay(t, func(wc *ws.Conn) {
		wc.WriteMessages(time.Now().Add(time.Second), relay.Encode(0, &relay.Hello{}))
		<-release // never reads
		wc.CloseNow()
	})
	c, err := client.Dial(context.Background(), addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the socket buffers with requests nobody reads.
	var sent atomic.Int32
	for range 256 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.Send(ctx, relay.ID{1}, relay.MsgID{1}, make([]byte, 60000), nil)
			sent.Add(1)
		}()
	}
	time.Sleep(time.Second)
	if n := sent.Load(); n != 0 {
		t.Fatalf("%d sends ended although the relay reads nothing", n)
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v behind a stalled write", d)
	}
}

// UnsubscribeLog stops the pushes, frees the relay's subscription slot,
// and is not undone by a reconnect.
func TestUnsubscribeLog(t *testing.T) {
	ctx := context.Background()
	_, addr := relaytest.Start(t, server.Config{MaxSubscriptions: 1})
	d := new(dialTracker)
	c := mustDial(t, addr, client.Options{DialContext: d.dial})
	a, b := twoLogs(t, c)
	if err := c.SubscribeLog(ctx, a, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.UnsubscribeLog(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if c.SubscribedLog(a.ID) {
		t.Fatal("SubscribedLog after UnsubscribeLog")
	}
	// The one slot is free again.
	if err := c.SubscribeLog(ctx, b, 0); err != nil {
		t.Fatalf("subscribing another log after unsubscribing: %v", err)
	}
	d.cut()
	waitUp(t, c)
	time.Sleep(100 * time.Millisecond) // let the resubscription finish
	if _, _, err := c.Append(ctx, a, mlsApp([]byte("a"), 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Append(ctx, b, mlsApp([]byte("b"), 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c.Pushes():
		if lp, ok := m.(*relay.LogPush); !ok || lp.LogID != b.ID {
			t.Fatalf("pushed %#v, want an entry of the subscribed log", m)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no push for the subscribed log")
	}
	select {
	case m := <-c.Pushes():
		t.Fatalf("pushed %#v after UnsubscribeLog", m)
	case <-time.After(300 * time.Millisecond):
	}
}

// An UnsubscribeLog while the client renews its subscriptions after a
// reconnect is not undone by the renewal: the relay's slot is free after.
func TestUnsubscribeDuringResubscribe(t *testing.T) {
	ctx := context.Background()
	const nq = 40
	_, addr := relaytest.Start(t, server.Config{MaxSubscriptions: nq + 1})
	d := new(dialTracker)
	c := mustDial(t, addr, client.Options{DialContext: d.dial})
	for range nq {
		subscribedQueue(t, c) // renewed before the log, which makes the window wide
	}
	a, b := twoLogs(t, c)
	if err := c.SubscribeLog(ctx, a, 0); err != nil {
		t.Fatal(err)
	}
	d.cut()
	for deadline := time.Now().Add(5 * time.Second); d.n.Load() < 2 || !c.Connected(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect")
		}
	}
	if err := c.UnsubscribeLog(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the renewal finish
	if err := c.SubscribeLog(ctx, b, 0); err != nil {
		t.Fatalf("log a's slot still taken on the relay after UnsubscribeLog: %v", err)
	}
}

// twoLogs creates logs for groups "a" and "b" at epoch 1.
func twoLogs(t *testing.T, c *client.Client) (a, b client.Log) {
	t.Helper()
	var err error
	if a, err = c.CreateLog(context.Background(), []byte("a"), 1); err != nil {
		t.Fatal(err)
	}
	if b, err = c.CreateLog(context.Background(), []byte("b"), 1); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// A relay that takes requests and never answers them fails each request
// after AnswerTimeout instead of holding the caller.
func TestAnswerTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr, _ := fakeRelay(t, func(wc *ws.Conn) {
		wc.WriteMessages(time.Now().Add(time.Second), relay.Encode(0, &relay.Hello{}))
		go func() {
			for { // read requests, answer none
				if _, err := wc.ReadMessage(); err != nil {
					return
				}
			}
		}()
		<-release
		wc.CloseNow()
	})
	c := mustDial(t, addr, client.Options{AnswerTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.CreateBlob(context.Background(), 1, [32]byte{})
	if !errors.Is(err, client.ErrNoAnswer) || time.Since(start) > 3*time.Second {
		t.Fatalf("CreateBlob = %v after %v; want ErrNoAnswer after 200 ms", err, time.Since(start))
	}
}
