package postgres_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tainik/tainik/internal/servicetest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/postgres"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		url := servicetest.Postgres(t)
		open := func() *postgres.Store {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		cur := open()
		t.Cleanup(func() { cur.Close() })
		return cur, func() store.Store {
			cur.Close()
			cur = open()
			return cur
		}
	})
}

// TestMigrateConcurrently opens the store from several goroutines at once,
// as nodes starting together do: each migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	url := servicetest.Postgres(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestRefusesNewerSchema: a node older than the database's schema does
// not start on it.
func TestRefusesNewerSchema(t *testing.T) {
	url := servicetest.Postgres(t)
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := postgres.Open(context.Background(), url); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open on a newer schema: %v, want an error", err)
	}
}

// TestExpireOnEveryNode runs Expire from two stores (two nodes) at once
// while messages are acknowledged: no deadlock, each expired message
// counted once, queue counts right.
func TestExpireOnEveryNode(t *testing.T) {
	url := servicetest.Postgres(t)
	ctx := context.Background()
	var nodes [2]*postgres.Store
	for i := range nodes {
		s, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes[i] = s
	}
	const queues, perQueue = 20, 50
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	keys := make([]relay.ID, queues)
	for i := range keys {
		var rid, sid relay.ID
		rand.Read(rid[:])
		rand.Read(sid[:])
		if err := nodes[0].CreateQueue(ctx, store.Queue{RecipientID: rid, SenderID: sid}); err != nil {
			t.Fatal(err)
		}
		q, err := nodes[0].QueueByRecipient(ctx, rid)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = q.Key
		for j := range perQueue {
			m := store.Message{Payload: []byte("x"), Expires: past}
			m.ID[0], m.ID[1] = byte(j), 1
			if j%2 == 1 {
				m.Expires = future
			}
			if _, _, err := nodes[0].AddMessage(ctx, q.Key, m, 1000); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.Expire(ctx, time.Now())
			if err != nil {
				t.Errorf("Expire on node %d: %v", i, err)
			}
			counts[i] = n
		}()
	}
	// Acknowledge a live message in every queue meanwhile, in the
	// opposite key order.
	for i := len(keys) - 1; i >= 0; i-- {
		if _, err := nodes[1].AckMessages(ctx, keys[i], []relay.MsgID{{1, 1}}, time.Now().Add(time.Hour)); err != nil {
			t.Errorf("AckMessages: %v", err)
		}
	}
	wg.Wait()
	if got, want := counts[0]+counts[1], queues*perQueue/2; got != want {
		t.Errorf("expired %d+%d messages, want %d in all", counts[0], counts[1], want)
	}
	for _, k := range keys {
		msgs, err := nodes[0].Messages(ctx, k, 0, 1000, 1<<20)
		if err != nil || len(msgs) != perQueue/2-1 {
			t.Fatalf("queue after expiry: %d messages, %v; want %d", len(msgs), err, perQueue/2-1)
		}
	}
}

// TestExpireSweepsTombstonesToTheEnd: Expire counts the tombstones it
// deletes, so a caller that sweeps until it returns 0 does not stop after
// one batch of them (every acknowledged message leaves one).
func TestExpireSweepsTombstonesToTheEnd(t *testing.T) {
	url := servicetest.Postgres(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, q := storetest.NewQueue(t, s)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// 15000 tombstones, as AckMessages leaves them, all past their keep.
	if _, err := conn.Exec(ctx, `INSERT INTO messages (queue, seq, msg_id, payload, acked, expires)
		SELECT $1, g, int8send(g), NULL, true, now() - interval '1 hour' FROM generate_series(1, 15000) g`, q.Key[:]); err != nil {
		t.Fatal(err)
	}
	// Called until it returns 0, as the relay's expiry loop does.
	total := 0
	for {
		n, err := s.Expire(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM messages WHERE queue = $1`, q.Key[:]).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if total != 15000 || left != 0 {
		t.Fatalf("the sweep deleted %d tombstones and left %d, want all 15000", total, left)
	}
}

// TestReadCommitted: the store's connections use READ COMMITTED even
// when the server's or the URL's default is stricter, since its
// statements are written for it.
func TestReadCommitted(t *testing.T) {
	url := servicetest.Postgres(t) + "&default_transaction_isolation=serializable"
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := postgres.Isolation(ctx, s); got != "read committed" {
		t.Fatalf("the store's connections run at %q", got)
	}
}
