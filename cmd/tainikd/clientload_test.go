package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
)

// Client-side load shared by the end-to-end tests that kill relay
// processes under load (TestCrash, TestScaleOut).

// mlsMessage builds an MLS PrivateMessage for groupID at epoch as far as
// the relay reads it, with body in place of the ciphertext.
func mlsMessage(groupID []byte, epoch uint64, contentType uint8, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, relay.WireFormatPrivateMessage)
	b = relay.AppendVarint(b, uint32(len(groupID)))
	b = append(b, groupID...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, contentType)
	return append(b, body...)
}

// recipient is a client subscribed to one queue.
type recipient struct {
	c *client.Client
	q client.Queue
}

// subscribedQueue creates a queue on c and subscribes c to its pushes.
func subscribedQueue(t *testing.T, ctx context.Context, c *client.Client) client.Queue {
	t.Helper()
	q, err := c.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	return q
}

// retryUntilDone calls f until it succeeds or work ends, giving each call
// three seconds; relay errors other than disconnections are failures.
func retryUntilDone(work context.Context, f func(context.Context) error) bool {
	for work.Err() == nil {
		actx, cancel := context.WithTimeout(work, 3*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return true
		}
		var re *relay.Error
		if errors.As(err, &re) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // retry interval while the relay restarts or clients fail over
	}
	return false
}

// sendUntilDone is sender s: until work ends, it sends its message n, of
// size random bytes, to recipients[to(n)], and passes each acknowledged
// message to acked with its recipient's index.
func sendUntilDone(work context.Context, c *client.Client, s, size int, recipients []recipient, to func(n int) int, acked func(id relay.MsgID, r int)) {
	for n := 0; work.Err() == nil; n++ {
		var id relay.MsgID
		binary.BigEndian.PutUint32(id[:], uint32(s))
		binary.BigEndian.PutUint32(id[4:], uint32(n))
		r := to(n)
		body := make([]byte, size)
		rand.Read(body)
		if retryUntilDone(work, func(ctx context.Context) error {
			return c.Send(ctx, recipients[r].q.SenderID, id, body, nil)
		}) {
			acked(id, r)
		}
	}
}

// appendUntilDone is appender a: it appends to the group log lg until work
// ends, each message at the epoch last learned from the relay, which it
// keeps in epoch. isCommit(n) tells whether its message n is a commit;
// each acknowledged append is passed to appended.
func appendUntilDone(work context.Context, c *client.Client, lg client.Log, gid []byte, a int, epoch *atomic.Uint64, isCommit func(n int) bool, appended func(seq uint64, msg []byte)) {
	for n := 0; work.Err() == nil; n++ {
		ct := uint8(relay.ContentTypeApplication)
		if isCommit(n) {
			ct = relay.ContentTypeCommit
		}
		msg := mlsMessage(gid, epoch.Load(), ct, []byte(fmt.Sprintf("appender %d message %d", a, n)))
		var seq uint64
		retryUntilDone(work, func(ctx context.Context) error {
			s, e, err := c.Append(ctx, lg, msg)
			var re *relay.Error
			if errors.As(err, &re) && (re.Code == relay.CodeStaleEpoch || re.Code == relay.CodeFutureEpoch) {
				epoch.Store(re.Detail)
				return re
			}
			if err == nil {
				seq = s
				if e > epoch.Load() {
					epoch.Store(e)
				}
			}
			return err
		})
		if seq != 0 {
			appended(seq, msg)
		}
	}
}

// drainQueue receives and acknowledges every message left in q, passing
// each to seen before acknowledging it.
func drainQueue(t *testing.T, ctx context.Context, c *client.Client, q client.Queue, seen func(relay.QueueMessage)) {
	t.Helper()
	for {
		msgs, err := c.Receive(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			seen(m)
			// not_found: an acknowledgement from before the drain (a
			// consumer's, sent as its work ended) deleted it meanwhile.
			if err := c.Ack(ctx, q, m.MsgID); err != nil && !errors.Is(err, &relay.Error{Code: relay.CodeNotFound}) {
				t.Fatal(err)
			}
		}
	}
}

// checkDelivered reports acknowledged sends that were not delivered.
func checkDelivered[V any](t *testing.T, ackedSend map[relay.MsgID]V, delivered map[relay.MsgID]bool) {
	t.Helper()
	lost := 0
	for id := range ackedSend {
		if !delivered[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages were not delivered", lost, len(ackedSend))
	}
}

// readLog reads the whole of lg through c, checking that it has no gaps.
func readLog(t *testing.T, ctx context.Context, c *client.Client, lg client.Log) [][]byte {
	t.Helper()
	var order [][]byte
	for from := uint64(1); ; {
		got, err := c.Read(ctx, lg, from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got.Entries {
			if e.Seq != uint64(len(order)+1) {
				t.Fatalf("log has a gap: seq %d at position %d", e.Seq, len(order)+1)
			}
			order = append(order, e.Message)
			from = e.Seq + 1
		}
		if !got.More {
			return order
		}
	}
}

// checkSameLog checks that two readers saw the same log and that it holds
// every acknowledged append.
func checkSameLog(t *testing.T, orders [][][]byte, appended map[uint64][]byte) {
	t.Helper()
	if len(orders[0]) != len(orders[1]) {
		t.Fatalf("readers see %d and %d entries", len(orders[0]), len(orders[1]))
	}
	for i := range orders[0] {
		if !bytes.Equal(orders[0][i], orders[1][i]) {
			t.Fatalf("readers differ at entry %d", i+1)
		}
	}
	for seq, msg := range appended {
		if seq > uint64(len(orders[0])) || !bytes.Equal(orders[0][seq-1], msg) {
			t.Errorf("acknowledged append at seq %d is missing or different", seq)
		}
	}
}
