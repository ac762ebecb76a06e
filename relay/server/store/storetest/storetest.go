// Package storetest is the behaviour suite for store.Store implementations.
// Every implementation's tests call Run.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// Opener returns a fresh, empty store and a function that closes it and
// opens the same data again (to check durability).
type Opener func(t *testing.T) (s store.Store, reopen func() store.Store)

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Queue", testQueue},
		{"QueueDurable", testQueueDurable},
		{"QueueQuotaAndDelete", testQueueQuotaAndDelete},
		{"LogEpochRule", testLogEpochRule},
		{"LogConcurrentCommits", testLogConcurrentCommits},
		{"Blob", testBlob},
		{"Expire", testExpire},
		{"TombstoneKeep", testTombstoneKeep},
		{"LogEntryExpiry", testLogEntryExpiry},
		{"ConcurrentWrites", testConcurrentWrites},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func randID(t testing.TB) relay.ID {
	var id relay.ID
	rand.Read(id[:])
	return id
}

var ctx = context.Background()

// NewQueue creates a queue with random identifiers in s and returns its
// recipient and sender ids and the queue as QueueByRecipient gives it.
func NewQueue(t testing.TB, s store.Store) (relay.ID, relay.ID, store.Queue) {
	t.Helper()
	rid, sid := randID(t), randID(t)
	if err := s.CreateQueue(ctx, store.Queue{RecipientID: rid, SenderID: sid, RecipientKey: [32]byte{1}}); err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	q, err := s.QueueByRecipient(ctx, rid)
	if err != nil {
		t.Fatalf("QueueByRecipient: %v", err)
	}
	return rid, sid, q
}

func msg(n byte) store.Message {
	return store.Message{ID: relay.MsgID{n}, Payload: bytes.Repeat([]byte{n}, 1024), Expires: time.Now().Add(time.Hour)}
}

func testQueue(t *testing.T, open Opener) {
	s, _ := open(t)
	rid, sid, q := NewQueue(t, s)
	if q.RecipientKey != [32]byte{1} || q.SenderKey != nil {
		t.Fatalf("got %+v", q)
	}
	qs, err := s.QueueBySender(ctx, sid)
	if err != nil || qs.Key != q.Key {
		t.Fatalf("QueueBySender: %v, key %x want %x", err, qs.Key, q.Key)
	}
	if _, err := s.QueueBySender(ctx, rid); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("QueueBySender(recipient id): got %v, want ErrNotFound", err)
	}
	if err := s.CreateQueue(ctx, store.Queue{RecipientID: rid, SenderID: randID(t)}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate CreateQueue: got %v, want ErrExists", err)
	}
	if err := s.LockQueue(ctx, q.Key, [32]byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := s.LockQueue(ctx, q.Key, [32]byte{3}); !errors.Is(err, store.ErrLocked) {
		t.Errorf("second LockQueue: got %v, want ErrLocked", err)
	}
	q, _ = s.QueueByRecipient(ctx, rid)
	if len(q.SenderKey) != 32 || q.SenderKey[0] != 2 {
		t.Errorf("sender key %x", q.SenderKey)
	}
	// A store that caches sender lookups must not answer from before
	// the lock.
	if qs, _ := s.QueueBySender(ctx, sid); len(qs.SenderKey) != 32 || qs.SenderKey[0] != 2 {
		t.Errorf("sender key by sender after the lock: %x", qs.SenderKey)
	}
	for i := byte(1); i <= 3; i++ {
		seq, dup, err := s.AddMessage(ctx, q.Key, msg(i), 100)
		if err != nil || dup || seq != uint64(i) {
			t.Fatalf("AddMessage %d: seq %d dup %v err %v", i, seq, dup, err)
		}
	}
	if seq, dup, err := s.AddMessage(ctx, q.Key, msg(2), 100); err != nil || !dup || seq != 2 {
		t.Errorf("duplicate AddMessage: seq %d dup %v err %v", seq, dup, err)
	}
	got, err := s.Messages(ctx, q.Key, 0, 10, 1<<20)
	if err != nil || len(got) != 3 {
		t.Fatalf("Messages: %d, %v", len(got), err)
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) || m.ID != msg(byte(i+1)).ID || !bytes.Equal(m.Payload, msg(byte(i+1)).Payload) {
			t.Errorf("message %d: got seq %d id %x", i, m.Seq, m.ID)
		}
	}
	if got, _ := s.Messages(ctx, q.Key, 1, 10, 1); len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("Messages after 1 with a byte limit: got %d messages", len(got))
	}
	if n, err := s.AckMessages(ctx, q.Key, []relay.MsgID{{2}, {77}}, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("AckMessages: %d, %v", n, err)
	}
	if _, err := s.AckMessages(ctx, q.Key, []relay.MsgID{{2}}, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second AckMessages: got %v, want ErrNotFound", err)
	}
	if _, dup, err := s.AddMessage(ctx, q.Key, msg(2), 100); err != nil || !dup {
		t.Errorf("AddMessage of an acknowledged id: dup %v err %v, want a duplicate", dup, err)
	}

	got, _ = s.Messages(ctx, q.Key, 0, 10, 1<<20)
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 3 {
		t.Errorf("after ack: got %+v", got)
	}
	if q, _ := s.QueueByRecipient(ctx, rid); q.Messages != 2 {
		t.Errorf("Messages count %d, want 2", q.Messages)
	}
}

func testQueueDurable(t *testing.T, open Opener) {
	s, reopen := open(t)
	rid, _, q := NewQueue(t, s)
	for i := byte(1); i <= 5; i++ {
		if _, _, err := s.AddMessage(ctx, q.Key, msg(i), 100); err != nil {
			t.Fatal(err)
		}
	}
	s.AckMessages(ctx, q.Key, []relay.MsgID{{1}}, time.Now().Add(time.Hour))
	s = reopen()
	q2, err := s.QueueByRecipient(ctx, rid)
	if err != nil || q2.Key != q.Key {
		t.Fatalf("after reopen: %v", err)
	}
	got, _ := s.Messages(ctx, q.Key, 0, 10, 1<<20)
	if len(got) != 4 || got[0].Seq != 2 {
		t.Fatalf("after reopen: %d messages", len(got))
	}
	// Sequence numbers continue after a reopen.
	if seq, _, _ := s.AddMessage(ctx, q.Key, msg(9), 100); seq != 6 {
		t.Errorf("seq after reopen %d, want 6", seq)
	}
}

func testQueueQuotaAndDelete(t *testing.T, open Opener) {
	s, _ := open(t)
	rid, sid, q := NewQueue(t, s)
	for i := byte(1); i <= 2; i++ {
		if _, _, err := s.AddMessage(ctx, q.Key, msg(i), 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.AddMessage(ctx, q.Key, msg(3), 2); !errors.Is(err, store.ErrQuota) {
		t.Errorf("over quota: got %v, want ErrQuota", err)
	}
	if err := s.DeleteQueue(ctx, q.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueueByRecipient(ctx, rid); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted queue by recipient: %v", err)
	}
	if _, err := s.QueueBySender(ctx, sid); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted queue by sender: %v", err)
	}
	if _, _, err := s.AddMessage(ctx, q.Key, msg(4), 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddMessage to deleted queue: %v", err)
	}
}

func newLog(t *testing.T, s store.Store, epoch uint64) relay.ID {
	t.Helper()
	id := randID(t)
	if err := s.CreateLog(ctx, store.Log{ID: id, GroupID: []byte("group"), Epoch: epoch, TokenHash: sha256.Sum256([]byte("tok"))}); err != nil {
		t.Fatal(err)
	}
	return id
}

func entry(epoch uint64, commit bool, m string) store.Entry {
	return store.Entry{Epoch: epoch, Commit: commit, Message: []byte(m), Expires: time.Now().Add(time.Hour)}
}

func testLogEpochRule(t *testing.T, open Opener) {
	s, reopen := open(t)
	id := newLog(t, s, 5)
	steps := []struct {
		e      store.Entry
		seq    uint64
		epoch  uint64
		err    bool
		future bool
	}{
		{e: entry(5, false, "app5"), seq: 1, epoch: 5},
		{e: entry(6, false, "app6"), epoch: 5, err: true, future: true},
		{e: entry(4, true, "commit4"), epoch: 5, err: true},
		{e: entry(6, true, "commit6"), epoch: 5, err: true, future: true},
		{e: entry(5, true, "commit5"), seq: 2, epoch: 6},
		{e: entry(5, true, "commit5b"), epoch: 6, err: true},
		{e: entry(5, false, "late app5"), seq: 3, epoch: 6},
		{e: entry(4, false, "too late"), epoch: 6, err: true},
		{e: entry(6, false, "app6"), seq: 4, epoch: 6},
	}
	for i, st := range steps {
		seq, epoch, err := s.AppendLog(ctx, id, st.e)
		if st.err {
			var ee *store.EpochError
			if !errors.As(err, &ee) || ee.Current != st.epoch || ee.Future != st.future {
				t.Errorf("step %d (%s): got %v, want EpochError{%d, %v}", i, st.e.Message, err, st.epoch, st.future)
			}
			continue
		}
		if err != nil || seq != st.seq || epoch != st.epoch {
			t.Errorf("step %d (%s): got seq %d epoch %d err %v, want %d %d", i, st.e.Message, seq, epoch, err, st.seq, st.epoch)
		}
	}
	s = reopen()
	l, err := s.Log(ctx, id)
	if err != nil || l.Epoch != 6 || l.NextSeq != 5 || string(l.GroupID) != "group" {
		t.Fatalf("Log after reopen: %+v %v", l, err)
	}
	es, more, err := s.LogEntries(ctx, id, 2, 2, 1<<20)
	if err != nil || len(es) != 2 || !more || es[0].Seq != 2 || string(es[0].Message) != "commit5" || !es[0].Commit || es[1].Seq != 3 {
		t.Errorf("LogEntries: %+v more %v err %v", es, more, err)
	}
	if _, _, err := s.AppendLog(ctx, randID(t), entry(0, false, "x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AppendLog to unknown log: %v", err)
	}
}

func testLogConcurrentCommits(t *testing.T, open Opener) {
	s, _ := open(t)
	id := newLog(t, s, 0)
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, epoch, err := s.AppendLog(ctx, id, entry(0, true, string(rune('a'+i))))
			var ee *store.EpochError
			switch {
			case err == nil && epoch == 1:
				mu.Lock()
				won++
				mu.Unlock()
			case errors.As(err, &ee) && ee.Current == 1:
			default:
				t.Errorf("AppendLog: epoch %d err %v", epoch, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d commits accepted for one epoch, want 1", won)
	}
}

func testBlob(t *testing.T, open Opener) {
	s, reopen := open(t)
	up, down := randID(t), randID(t)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	digest := sha256.Sum256(data)
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: up, DownloadToken: down, Size: uint64(len(data)), Digest: digest, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write(data[:4000])
	st, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err := s.PutChunk(ctx, up, 0, data[:4000], st, false); err != nil {
		t.Fatal(err)
	}
	var oe *store.OffsetError
	if err := s.PutChunk(ctx, up, 100, data[100:200], st, false); !errors.As(err, &oe) || oe.Length != 4000 {
		t.Errorf("PutChunk at wrong offset: %v", err)
	}
	s = reopen()
	b, err := s.BlobByUpload(ctx, up)
	if err != nil || b.Length != 4000 || b.Complete || !bytes.Equal(b.HashState, st) || b.Digest != digest {
		t.Fatalf("BlobByUpload after reopen: %+v %v", b, err)
	}
	if err := s.PutChunk(ctx, up, 4000, data[4000:], nil, true); err != nil {
		t.Fatal(err)
	}
	b, err = s.BlobByDownload(ctx, down)
	if err != nil || !b.Complete || b.Length != uint64(len(data)) {
		t.Fatalf("BlobByDownload: %+v %v", b, err)
	}
	for _, r := range []struct{ off, n int }{{0, 10000}, {3990, 20}, {5000, 100000}, {9999, 5}} {
		got, err := s.ReadBlob(ctx, down, uint64(r.off), r.n)
		want := data[r.off:min(r.off+r.n, len(data))]
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadBlob(%d, %d): %d bytes, %v", r.off, r.n, len(got), err)
		}
	}
	if _, err := s.BlobByDownload(ctx, up); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("upload token used as download token: %v", err)
	}
	if err := s.DeleteBlob(ctx, up); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlob(ctx, down, 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadBlob after delete: %v", err)
	}
}

func testExpire(t *testing.T, open Opener) {
	s, _ := open(t)
	_, _, q := NewQueue(t, s)
	now := time.Now()
	old := msg(1)
	old.Expires = now.Add(-time.Minute)
	s.AddMessage(ctx, q.Key, old, 10)
	s.AddMessage(ctx, q.Key, msg(2), 10)
	id := newLog(t, s, 0)
	e := entry(0, false, "old")
	e.Expires = now.Add(-time.Minute)
	s.AppendLog(ctx, id, e)
	s.AppendLog(ctx, id, entry(0, false, "new"))
	up := randID(t)
	s.CreateBlob(ctx, store.Blob{UploadToken: up, DownloadToken: randID(t), Size: 1, Expires: now.Add(-time.Minute)})
	n, err := s.Expire(ctx, now)
	if err != nil || n != 3 {
		t.Fatalf("Expire: %d, %v; want 3", n, err)
	}
	if got, _ := s.Messages(ctx, q.Key, 0, 10, 1<<20); len(got) != 1 || got[0].ID != msg(2).ID {
		t.Errorf("messages after expiry: %+v", got)
	}
	if got, _, _ := s.LogEntries(ctx, id, 0, 10, 1<<20); len(got) != 1 || string(got[0].Message) != "new" {
		t.Errorf("entries after expiry: %+v", got)
	}
	if _, err := s.BlobByUpload(ctx, up); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("blob after expiry: %v", err)
	}
	if n, _ := s.Expire(ctx, now); n != 0 {
		t.Errorf("second Expire deleted %d", n)
	}
}

// testTombstoneKeep: an acknowledged id is refused as a duplicate until
// the time AckMessages was given or the message's own expiry, whichever
// is first; after the sweep it may be sent again.
func testTombstoneKeep(t *testing.T, open Opener) {
	s, reopen := open(t)
	_, _, q := NewQueue(t, s)
	now := time.Now()
	for i := byte(1); i <= 2; i++ {
		if _, _, err := s.AddMessage(ctx, q.Key, msg(i), 10); err != nil {
			t.Fatal(err)
		}
	}
	// Message 1's tombstone is kept for a minute; message 2's would be
	// kept for two hours, but the message expires within the hour.
	if n, err := s.AckMessages(ctx, q.Key, []relay.MsgID{{1}}, now.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("AckMessages(1): %d, %v", n, err)
	}
	if n, err := s.AckMessages(ctx, q.Key, []relay.MsgID{{2}}, now.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("AckMessages(2): %d, %v", n, err)
	}
	s = reopen()
	if n, err := s.Expire(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("Expire after two minutes: %d, %v; want 1 (message 1's tombstone)", n, err)
	}
	if _, dup, err := s.AddMessage(ctx, q.Key, msg(1), 10); err != nil || dup {
		t.Errorf("AddMessage(1) after its tombstone was swept: dup %v, %v; want it stored", dup, err)
	}
	if _, dup, err := s.AddMessage(ctx, q.Key, msg(2), 10); err != nil || !dup {
		t.Errorf("AddMessage(2) within its tombstone's time: dup %v, %v; want a duplicate", dup, err)
	}
	if n, err := s.Expire(ctx, now.Add(61*time.Minute)); err != nil || n != 2 {
		t.Fatalf("Expire after 61 minutes: %d, %v; want 2 (message 1, sent again, and message 2's tombstone)", n, err)
	}
	if _, dup, err := s.AddMessage(ctx, q.Key, msg(2), 10); err != nil || dup {
		t.Errorf("AddMessage(2) after the message's expiry: dup %v, %v; want it stored", dup, err)
	}
}

// testLogEntryExpiry: each entry has its own expiry; an entry past it is
// never served, swept or not, and the sweep deletes only those.
func testLogEntryExpiry(t *testing.T, open Opener) {
	s, reopen := open(t)
	id := newLog(t, s, 0)
	now := time.Now()
	for i, exp := range []time.Duration{time.Hour, -time.Second, time.Hour, -time.Second, time.Hour} {
		e := entry(0, i == 4, fmt.Sprint("e", i+1))
		e.Expires = now.Add(exp)
		if _, _, err := s.AppendLog(ctx, id, e); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(es []store.Entry) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	check := func(when string) {
		t.Helper()
		es, more, err := s.LogEntries(ctx, id, 1, 10, 1<<20)
		if got, want := seqs(es), []uint64{1, 3, 5}; err != nil || more || !slices.Equal(got, want) {
			t.Errorf("%s: LogEntries = %v more %v err %v, want %v", when, got, more, err, want)
		}
		es, more, err = s.LogEntries(ctx, id, 2, 1, 1<<20)
		if got := seqs(es); err != nil || !more || !slices.Equal(got, []uint64{3}) {
			t.Errorf("%s: LogEntries(from 2, max 1) = %v more %v err %v, want [3] more", when, got, more, err)
		}
		es, more, err = s.LogEntries(ctx, id, 4, 10, 1<<20)
		if got := seqs(es); err != nil || more || !slices.Equal(got, []uint64{5}) || string(es[0].Message) != "e5" {
			t.Errorf("%s: LogEntries(from 4) = %v more %v err %v, want [5]", when, got, more, err)
		}
	}
	check("before the sweep")
	s = reopen()
	check("after reopen")
	n, err := s.Expire(ctx, time.Now())
	if err != nil || n != 2 {
		t.Fatalf("Expire: %d, %v; want 2", n, err)
	}
	check("after the sweep")
	if l, err := s.Log(ctx, id); err != nil || l.NextSeq != 6 || l.Epoch != 1 {
		t.Errorf("Log after the sweep: %+v %v", l, err)
	}
}

func testConcurrentWrites(t *testing.T, open Opener) {
	s, reopen := open(t)
	_, _, q := NewQueue(t, s)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := store.Message{Payload: []byte{byte(i)}, Expires: time.Now().Add(time.Hour)}
			m.ID[0], m.ID[1] = byte(i), byte(i>>8)
			if _, _, err := s.AddMessage(ctx, q.Key, m, 1000); err != nil {
				t.Errorf("AddMessage: %v", err)
			}
		}()
	}
	wg.Wait()
	s = reopen()
	got, _ := s.Messages(ctx, q.Key, 0, 1000, 1<<30)
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
	}
}
