package store_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

// TestPebbleRefusesBolt: a data directory that holds a bbolt store is not
// opened as an empty pebble store.
func TestPebbleRefusesBolt(t *testing.T) {
	dir := t.TempDir()
	b, err := store.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	s, err := store.OpenPebble(dir)
	if err == nil {
		s.Close()
		t.Fatal("OpenPebble opened a directory holding a bbolt store")
	}
	var ee *store.EngineError
	if !errors.As(err, &ee) || ee.Found != "bolt" || ee.Want != "pebble" {
		t.Errorf("error %v, want an EngineError naming bolt and pebble", err)
	}
	// And the other way round.
	dir2 := t.TempDir()
	p, err := store.OpenPebble(dir2)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if b, err := store.OpenBolt(dir2); !errors.As(err, &ee) || ee.Found != "pebble" {
		if err == nil {
			b.Close()
		}
		t.Errorf("OpenBolt on a pebble directory: %v, want an EngineError", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pebble")); !os.IsNotExist(err) {
		t.Errorf("refused open left a pebble directory behind: %v", err)
	}
}

// TestEngineMixedConcurrency runs queue writes, acknowledgements, queue
// creation (which spans the pebble store's partitions) and expiry sweeps at
// once, then checks every queue's messages against its count, its
// sequence numbers and the acknowledged ids, before and after a reopen.
func TestEngineMixedConcurrency(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine, dir string, s store.Embedded) {
		ctx := context.Background()
		const queues, workers, perWorker = 8, 32, 40
		keys := make([]relay.ID, queues)
		for i := range keys {
			_, _, q := storetest.NewQueue(t, s)
			keys[i] = q.Key
		}
		var mu sync.Mutex
		kept := map[relay.MsgID]relay.ID{} // id -> queue, not acknowledged
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var side sync.WaitGroup
		side.Add(2)
		go func() { // queue creation, a write across partitions
			defer side.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var rid, sid relay.ID
				rand.Read(rid[:])
				rand.Read(sid[:])
				if err := s.CreateQueue(ctx, store.Queue{RecipientID: rid, SenderID: sid}); err != nil {
					t.Errorf("CreateQueue: %v", err)
					return
				}
			}
		}()
		go func() { // expiry sweeps: nothing has expired
			defer side.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if n, err := s.Expire(ctx, time.Now()); err != nil || n != 0 {
					t.Errorf("Expire: %d, %v", n, err)
					return
				}
			}
		}()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					var id relay.MsgID
					binary.BigEndian.PutUint32(id[:], uint32(w))
					binary.BigEndian.PutUint32(id[4:], uint32(i))
					key := keys[(w+i)%queues]
					_, dup, err := s.AddMessage(ctx, key, store.Message{ID: id, Payload: id[:], Expires: time.Now().Add(time.Hour)}, 1<<20)
					if err != nil || dup {
						t.Errorf("AddMessage: dup %v err %v", dup, err)
						return
					}
					if i%3 == 0 {
						mu.Lock()
						kept[id] = key
						mu.Unlock()
						continue
					}
					if n, err := s.AckMessages(ctx, key, []relay.MsgID{id}, time.Now().Add(time.Hour)); err != nil || n != 1 {
						t.Errorf("AckMessages: %d, %v", n, err)
						return
					}
					// An acknowledged id stays a duplicate.
					if _, dup, err := s.AddMessage(ctx, key, store.Message{ID: id, Payload: id[:], Expires: time.Now().Add(time.Hour)}, 1<<20); err != nil || !dup {
						t.Errorf("re-adding an acknowledged id: dup %v err %v", dup, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		side.Wait()
		check := func(s store.Store, when string) {
			t.Helper()
			total := 0
			for _, key := range keys {
				msgs, err := s.Messages(ctx, key, 0, 1<<20, 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				var last uint64
				for _, m := range msgs {
					if m.Seq <= last {
						t.Fatalf("%s: seq %d after %d", when, m.Seq, last)
					}
					last = m.Seq
					if kept[m.ID] != key {
						t.Errorf("%s: message %x in the wrong queue or acknowledged", when, m.ID)
					}
				}
				// Every add took a sequence number, acknowledged or not.
				if want := uint64(workers * perWorker / queues); last > want {
					t.Errorf("%s: last seq %d > %d adds", when, last, want)
				}
				total += len(msgs)
			}
			if total != len(kept) {
				t.Errorf("%s: %d messages kept, want %d", when, total, len(kept))
			}
		}
		check(s, "before reopen")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err := store.OpenEmbedded(engine, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(s, "after reopen")
		// Each queue took exactly its adds' sequence numbers.
		for _, key := range keys {
			seq, dup, err := s.AddMessage(ctx, key, store.Message{ID: relay.MsgID{0xff}, Expires: time.Now().Add(time.Hour)}, 1<<20)
			if want := uint64(workers*perWorker/queues + 1); err != nil || dup || seq != want {
				t.Errorf("next AddMessage: seq %d dup %v err %v, want seq %d", seq, dup, err, want)
			}
		}
	})
}

// TestCrashKeepsAcknowledgedWrites kills a process that is writing (SIGKILL,
// mid-commit) and checks that every write it was told had succeeded is in
// the store afterwards. A killed process keeps what the kernel already has,
// so this checks that a write is answered only after it reached the WAL or
// the file, not that it survives a power loss.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if dir := os.Getenv("STORE_CRASH_CHILD"); dir != "" {
		crashChild(dir, os.Getenv("STORE_CRASH_ENGINE"))
		return
	}
	eachEngine(t, func(t *testing.T, engine, dir string, s store.Embedded) {
		var rid relay.ID
		rid[0] = 7
		if err := s.CreateQueue(context.Background(), store.Queue{RecipientID: rid, SenderID: relay.ID{8}}); err != nil {
			t.Fatal(err)
		}
		q, err := s.QueueByRecipient(context.Background(), rid)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()

		cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashKeepsAcknowledgedWrites$")
		cmd.Env = append(os.Environ(), "STORE_CRASH_CHILD="+dir, "STORE_CRASH_ENGINE="+engine)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[relay.MsgID]bool{}
		sc := bufio.NewScanner(out)
		for sc.Scan() && len(acked) < 3000 {
			b, err := hex.DecodeString(sc.Text())
			if err != nil || len(b) != len(relay.MsgID{}) {
				continue
			}
			acked[relay.MsgID(b)] = true
		}
		cmd.Process.Kill()
		cmd.Wait()
		if len(acked) < 3000 {
			t.Fatalf("child acknowledged only %d writes", len(acked))
		}

		s, err = store.OpenEmbedded(engine, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		msgs, err := s.Messages(context.Background(), q.Key, 0, 1<<30, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		have := map[relay.MsgID]bool{}
		for _, m := range msgs {
			have[m.ID] = true
		}
		lost := 0
		for id := range acked {
			if !have[id] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%d of %d acknowledged writes lost", lost, len(acked))
		}
		t.Logf("%d acknowledged, %d stored", len(acked), len(msgs))
	})
}

// crashChild writes messages from 64 goroutines until it is killed,
// printing each id once its AddMessage has returned.
func crashChild(dir, engine string) {
	s, err := store.OpenEmbedded(engine, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", engine, err)
		os.Exit(2)
	}
	var rid relay.ID
	rid[0] = 7
	q, err := s.QueueByRecipient(context.Background(), rid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var id relay.MsgID
				binary.BigEndian.PutUint32(id[:], uint32(g))
				binary.BigEndian.PutUint32(id[4:], uint32(i))
				if _, _, err := s.AddMessage(context.Background(), q.Key, store.Message{ID: id, Payload: make([]byte, 512), Expires: time.Now().Add(time.Hour)}, 1<<30); err != nil {
					fmt.Fprintln(os.Stderr, "crash child:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(w, hex.EncodeToString(id[:]))
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestPebbleOldIDIndex: an id index entry written before it carried the
// message's expiry (8 bytes, the sequence number only) still lets the
// message be acknowledged, and the acknowledgement still leaves a
// tombstone that refuses a retry. An 8-byte entry that names no message
// is dropped without failing the acknowledgement of the others.
func TestPebbleOldIDIndex(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenPebble(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rid, _, q := storetest.NewQueue(t, s)
	id := relay.MsgID{7}
	if _, _, err := s.AddMessage(ctx, q.Key, store.Message{ID: id, Payload: []byte("old"), Expires: time.Now().Add(time.Hour)}, 10); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := pebble.Open(filepath.Join(dir, "pebble"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stale := relay.MsgID{8}
	staleKey := append(append([]byte{'i'}, q.Key[:]...), stale[:]...)
	if err := db.Set(staleKey, []byte{0, 0, 0, 0, 0, 0, 0, 99}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	idKey := append(append([]byte{'i'}, q.Key[:]...), id[:]...)
	v, closer, err := db.Get(idKey)
	if err != nil {
		t.Fatalf("id index entry: %v", err)
	}
	if len(v) != 16 {
		t.Fatalf("id index entry of %d bytes, want 16", len(v))
	}
	old := append([]byte(nil), v[:8]...)
	closer.Close()
	if err := db.Set(idKey, old, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = store.OpenPebble(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.AckMessages(ctx, q.Key, []relay.MsgID{stale, id}, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("ack through an 8-byte index entry, next to a stale one: %d, %v", n, err)
	}
	if _, dup, err := s.AddMessage(ctx, q.Key, store.Message{ID: stale, Payload: []byte("new"), Expires: time.Now().Add(time.Hour)}, 10); err != nil || dup {
		t.Fatalf("send with the stale entry's id: dup %v, %v; want it stored", dup, err)
	}
	if q, err := s.QueueByRecipient(ctx, rid); err != nil || q.Messages != 1 {
		t.Fatalf("after the ack and a new send: %d messages, %v; want 1", q.Messages, err)
	}
	if _, dup, err := s.AddMessage(ctx, q.Key, store.Message{ID: id, Payload: []byte("old"), Expires: time.Now().Add(time.Hour)}, 10); err != nil || !dup {
		t.Fatalf("retry after the ack: dup %v, %v", dup, err)
	}
}

// TestCheckEpoch: the epoch rule of AppendLog, including the last epoch
// there is, which no commit can move past (it would wrap to 0).
func TestCheckEpoch(t *testing.T) {
	const last = ^uint64(0)
	for _, c := range []struct {
		cur, e uint64
		commit bool
		next   uint64
		ok     bool
	}{
		{5, 5, true, 6, true},   // the commit for the log's epoch wins
		{5, 5, false, 5, true},  // other messages for the epoch
		{5, 4, false, 5, true},  // and the one before
		{5, 4, true, 5, false},  // a commit for an old epoch loses
		{5, 3, false, 5, false}, // too old
		{5, 6, false, 5, false}, // the future
		{last, last, true, last, false},
		{last, last, false, last, true},
		{0, last, false, 0, false}, // not "the epoch before 0"
	} {
		next, err := store.CheckEpoch(c.cur, c.e, c.commit)
		if next != c.next || (err == nil) != c.ok {
			t.Errorf("CheckEpoch(%d, %d, commit %v) = %d, %v; want %d, ok %v", c.cur, c.e, c.commit, next, err, c.next, c.ok)
		}
	}
}

// eachEngine runs fn as a subtest for every embedded engine, on a store
// opened in a fresh directory.
func eachEngine(t *testing.T, fn func(t *testing.T, engine, dir string, s store.Embedded)) {
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			s, err := store.OpenEmbedded(engine, dir)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, engine, dir, s)
		})
	}
}
