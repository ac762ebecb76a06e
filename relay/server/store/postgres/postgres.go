// Package postgres is the relay store on PostgreSQL, for relays that run as
// several stateless nodes over one database. It implements store.Store and
// passes the same behaviour suite as the embedded store; Open applies the
// embedded schema migrations.
//
// Every write is one transaction and is acknowledged only after it
// commits. Ordering and the one-commit-per-epoch rule are enforced by row
// locks in the database, not in a node's memory, so they hold across
// nodes: a queue's or a log's row is locked while its next sequence number
// is taken and held until commit, so sequence numbers become visible in
// order.
package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// Store is a store.Store on PostgreSQL. It is safe for concurrent use, by
// many goroutines and by many processes sharing the database.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// defaultMaxConns is the pool size when the URL sets no pool_max_conns.
const defaultMaxConns = 16

// Open connects to the database at url (a PostgreSQL URL or keyword/value
// string; pool_max_conns sets the pool size) and applies the schema
// migrations it lacks.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// Each write holds a connection through its WAL flush, so
		// more connections than cores keep PostgreSQL's group commit
		// fed; 16 measured best on 2 cores (docs/performance.md), and
		// three nodes stay well under max_connections = 100.
		cfg.MaxConns = defaultMaxConns
	}
	// The statements are written for READ COMMITTED (concurrent sends to
	// one queue wait on its row instead of failing): a database whose
	// default is stricter would turn them into errors. Set after
	// connecting rather than as a startup parameter, which connection
	// poolers such as PgBouncer refuse.
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET default_transaction_isolation = 'read committed'")
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Close closes the connections. Writes that returned are committed.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

func hashID(label string, id relay.ID) []byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(id[:])
	return h.Sum(nil)
}

func (s *Store) check() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// retryable reports errors after which the whole transaction is safe to
// run again: it rolled back.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// tx runs fn in a transaction, again if it lost a deadlock or
// serialisation race.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	if err := s.check(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if attempt < 5 && retryable(err) {
			continue
		}
		return wrap(err)
	}
}

// wrap prefixes database errors and leaves the store's own alone.
func wrap(err error) error {
	var ee *store.EpochError
	var oe *store.OffsetError
	switch {
	case err == nil, errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExists),
		errors.Is(err, store.ErrLocked), errors.Is(err, store.ErrQuota), errors.Is(err, store.ErrClosed),
		errors.As(err, &ee), errors.As(err, &oe), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("postgres: %w", err)
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (s *Store) CreateQueue(ctx context.Context, q store.Queue) error {
	if err := s.check(); err != nil {
		return err
	}
	key := hashID("tainik recipient\x00", q.RecipientID)
	sh := hashID("tainik sender\x00", q.SenderID)
	_, err := s.pool.Exec(ctx, `INSERT INTO queues (key, sender_hash, recipient_key, sender_key, contact, next_seq, count)
		VALUES ($1, $2, $3, $4, $5, 1, 0)`, key, sh, q.RecipientKey[:], q.SenderKey, q.Contact)
	if isUniqueViolation(err) {
		return store.ErrExists
	}
	return wrap(err)
}

const queueColumns = `key, recipient_key, sender_key, contact, count`

func scanQueue(row pgx.Row) (store.Queue, error) {
	var q store.Queue
	var key, rk []byte
	err := row.Scan(&key, &rk, &q.SenderKey, &q.Contact, &q.Messages)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Queue{}, store.ErrNotFound
	}
	if err != nil {
		return store.Queue{}, wrap(err)
	}
	copy(q.Key[:], key)
	copy(q.RecipientKey[:], rk)
	return q, nil
}

func (s *Store) QueueByRecipient(ctx context.Context, rid relay.ID) (store.Queue, error) {
	if err := s.check(); err != nil {
		return store.Queue{}, err
	}
	return scanQueue(s.pool.QueryRow(ctx, `SELECT `+queueColumns+` FROM queues WHERE key = $1`, hashID("tainik recipient\x00", rid)))
}

func (s *Store) QueueBySender(ctx context.Context, sid relay.ID) (store.Queue, error) {
	if err := s.check(); err != nil {
		return store.Queue{}, err
	}
	return scanQueue(s.pool.QueryRow(ctx, `SELECT `+queueColumns+` FROM queues WHERE sender_hash = $1`, hashID("tainik sender\x00", sid)))
}

func (s *Store) LockQueue(ctx context.Context, key relay.ID, senderKey [32]byte) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var locked bool
		err := tx.QueryRow(ctx, `SELECT sender_key IS NOT NULL FROM queues WHERE key = $1 FOR UPDATE`, key[:]).Scan(&locked)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if locked {
			return store.ErrLocked
		}
		_, err = tx.Exec(ctx, `UPDATE queues SET sender_key = $2 WHERE key = $1`, key[:], senderKey[:])
		return err
	})
}

func (s *Store) DeleteQueue(ctx context.Context, key relay.ID) error {
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM queues WHERE key = $1`, key[:])
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// AddMessage takes the queue's next sequence number and inserts the
// message in one statement: the UPDATE holds the queue row until commit,
// so a queue's messages commit in sequence order and a reader's cursor
// never skips one.
func (s *Store) AddMessage(ctx context.Context, key relay.ID, m store.Message, max int) (uint64, bool, error) {
	if err := s.check(); err != nil {
		return 0, false, err
	}
	for range 3 {
		var seq int64
		err := s.pool.QueryRow(ctx, `SELECT seq FROM messages WHERE queue = $1 AND msg_id = $2`, key[:], m.ID[:]).Scan(&seq)
		if err == nil {
			return uint64(seq), true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, wrap(err)
		}
		err = s.pool.QueryRow(ctx, `WITH q AS (
				UPDATE queues SET next_seq = next_seq + 1, count = count + 1
				WHERE key = $1 AND count < $5 RETURNING next_seq - 1 AS seq)
			INSERT INTO messages (queue, seq, msg_id, payload, expires)
			SELECT $1, seq, $2, $3, $4 FROM q RETURNING seq`,
			key[:], m.ID[:], m.Payload, m.Expires, max).Scan(&seq)
		switch {
		case err == nil:
			return uint64(seq), false, nil
		case isUniqueViolation(err):
			// A concurrent send of the same id won; read its seq.
			continue
		case errors.Is(err, pgx.ErrNoRows):
			var exists bool
			if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM queues WHERE key = $1)`, key[:]).Scan(&exists); err != nil {
				return 0, false, wrap(err)
			}
			if !exists {
				return 0, false, store.ErrNotFound
			}
			return 0, false, store.ErrQuota
		default:
			return 0, false, wrap(err)
		}
	}
	return 0, false, errors.New("postgres: message id kept colliding")
}

func (s *Store) Messages(ctx context.Context, key relay.ID, after uint64, max, maxBytes int) ([]store.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, msg_id, payload, expires FROM messages
		WHERE queue = $1 AND seq > $2 AND NOT acked ORDER BY seq LIMIT $3`, key[:], int64(after), max)
	if err != nil {
		return nil, wrap(err)
	}
	var out []store.Message
	size := 0
	for rows.Next() {
		var m store.Message
		var seq int64
		var id []byte
		if err := rows.Scan(&seq, &id, &m.Payload, &m.Expires); err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		if len(out) > 0 && size+len(m.Payload)+24 > maxBytes {
			break
		}
		size += len(m.Payload) + 24
		m.Seq = uint64(seq)
		copy(m.ID[:], id)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	if len(out) == 0 {
		if err := s.queueExists(ctx, key); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) queueExists(ctx context.Context, key relay.ID) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM queues WHERE key = $1)`, key[:]).Scan(&exists); err != nil {
		return wrap(err)
	}
	if !exists {
		return store.ErrNotFound
	}
	return nil
}

// AckMessages turns the messages into tombstones that keep their ids until
// keep or until they would have expired, whichever is first, and lowers the
// queue's count, in one statement.
func (s *Store) AckMessages(ctx context.Context, key relay.ID, ids []relay.MsgID, keep time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	raw := make([][]byte, len(ids))
	for i := range ids {
		raw[i] = ids[i][:]
	}
	for attempt := 0; ; attempt++ {
		var n, queues int
		err := s.pool.QueryRow(ctx, `WITH a AS (
				UPDATE messages SET acked = true, payload = NULL, expires = least(expires, $3)
				WHERE queue = $1 AND msg_id = ANY($2) AND NOT acked RETURNING 1),
			u AS (
				UPDATE queues SET count = greatest(count - (SELECT count(*) FROM a), 0)
				WHERE key = $1 RETURNING 1)
			SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM u)`, key[:], raw, keep).Scan(&n, &queues)
		switch {
		case attempt < 5 && retryable(err):
			continue
		case err != nil:
			return 0, wrap(err)
		case queues == 0 || n == 0:
			return 0, store.ErrNotFound
		}
		return n, nil
	}
}

func (s *Store) CreateLog(ctx context.Context, l store.Log) error {
	if err := s.check(); err != nil {
		return err
	}
	if l.NextSeq == 0 {
		l.NextSeq = 1
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO logs (id, group_id, epoch, token_hash, next_seq) VALUES ($1, $2, $3, $4, $5)`,
		l.ID[:], l.GroupID, int64(l.Epoch), l.TokenHash[:], int64(l.NextSeq))
	if isUniqueViolation(err) {
		return store.ErrExists
	}
	return wrap(err)
}

func (s *Store) Log(ctx context.Context, id relay.ID) (store.Log, error) {
	if err := s.check(); err != nil {
		return store.Log{}, err
	}
	l := store.Log{ID: id}
	var epoch, next int64
	var th []byte
	err := s.pool.QueryRow(ctx, `SELECT group_id, epoch, token_hash, next_seq FROM logs WHERE id = $1`, id[:]).Scan(&l.GroupID, &epoch, &th, &next)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Log{}, store.ErrNotFound
	}
	if err != nil {
		return store.Log{}, wrap(err)
	}
	l.Epoch, l.NextSeq = uint64(epoch), uint64(next)
	copy(l.TokenHash[:], th)
	return l, nil
}

// AppendLog locks the log row, applies the epoch rule to the locked state
// and appends, all in one transaction: of two commits for one epoch sent
// through different nodes at the same moment, the second waits for the
// first's transaction and then sees the new epoch.
func (s *Store) AppendLog(ctx context.Context, id relay.ID, e store.Entry) (uint64, uint64, error) {
	var seq, epoch uint64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var cur, next int64
		err := tx.QueryRow(ctx, `SELECT epoch, next_seq FROM logs WHERE id = $1 FOR UPDATE`, id[:]).Scan(&cur, &next)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		epoch, err = store.CheckEpoch(uint64(cur), e.Epoch, e.Commit)
		if err != nil {
			return err
		}
		seq = uint64(next)
		if _, err := tx.Exec(ctx, `UPDATE logs SET epoch = $2, next_seq = next_seq + 1 WHERE id = $1`, id[:], int64(epoch)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO entries (log, seq, epoch, commit, message, expires) VALUES ($1, $2, $3, $4, $5, $6)`,
			id[:], int64(seq), int64(e.Epoch), e.Commit, e.Message, e.Expires)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return seq, epoch, nil
}

func (s *Store) LogEntries(ctx context.Context, id relay.ID, from uint64, max, maxBytes int) ([]store.Entry, bool, error) {
	if err := s.check(); err != nil {
		return nil, false, err
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, epoch, commit, message, expires FROM entries
		WHERE log = $1 AND seq >= $2 AND expires > $4 ORDER BY seq LIMIT $3`, id[:], int64(from), max+1, time.Now())
	if err != nil {
		return nil, false, wrap(err)
	}
	var out []store.Entry
	size, more := 0, false
	for rows.Next() {
		var e store.Entry
		var seq, epoch int64
		if err := rows.Scan(&seq, &epoch, &e.Commit, &e.Message, &e.Expires); err != nil {
			rows.Close()
			return nil, false, wrap(err)
		}
		if len(out) >= max || (len(out) > 0 && size+len(e.Message)+17 > maxBytes) {
			more = true
			break
		}
		size += len(e.Message) + 17
		e.Seq, e.Epoch = uint64(seq), uint64(epoch)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, wrap(err)
	}
	if len(out) == 0 {
		if _, err := s.Log(ctx, id); err != nil {
			return nil, false, err
		}
	}
	return out, more, nil
}

func (s *Store) CreateBlob(ctx context.Context, b store.Blob) error {
	if err := s.check(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO blobs (upload, download, size, length, digest, complete, hash_state, expires)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		hashID("tainik upload\x00", b.UploadToken), hashID("tainik download\x00", b.DownloadToken),
		int64(b.Size), int64(b.Length), b.Digest[:], b.Complete, b.HashState, b.Expires)
	if isUniqueViolation(err) {
		return store.ErrExists
	}
	return wrap(err)
}

func scanBlob(row pgx.Row) (store.Blob, error) {
	var b store.Blob
	var size, length int64
	var digest []byte
	err := row.Scan(&size, &length, &digest, &b.Complete, &b.HashState, &b.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Blob{}, store.ErrNotFound
	}
	if err != nil {
		return store.Blob{}, wrap(err)
	}
	b.Size, b.Length = uint64(size), uint64(length)
	copy(b.Digest[:], digest)
	return b, nil
}

const blobColumns = `size, length, digest, complete, hash_state, expires`

func (s *Store) BlobByUpload(ctx context.Context, upload relay.ID) (store.Blob, error) {
	if err := s.check(); err != nil {
		return store.Blob{}, err
	}
	return scanBlob(s.pool.QueryRow(ctx, `SELECT `+blobColumns+` FROM blobs WHERE upload = $1`, hashID("tainik upload\x00", upload)))
}

func (s *Store) BlobByDownload(ctx context.Context, download relay.ID) (store.Blob, error) {
	if err := s.check(); err != nil {
		return store.Blob{}, err
	}
	return scanBlob(s.pool.QueryRow(ctx, `SELECT `+blobColumns+` FROM blobs WHERE download = $1`, hashID("tainik download\x00", download)))
}

func (s *Store) PutChunk(ctx context.Context, upload relay.ID, offset uint64, data, hashState []byte, complete bool) error {
	uh := hashID("tainik upload\x00", upload)
	return s.tx(ctx, func(tx pgx.Tx) error {
		var length int64
		var done bool
		err := tx.QueryRow(ctx, `SELECT length, complete FROM blobs WHERE upload = $1 FOR UPDATE`, uh).Scan(&length, &done)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if done || uint64(length) != offset {
			return &store.OffsetError{Length: uint64(length)}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO chunks (upload, off, len, data) VALUES ($1, $2, $3, $4)`, uh, int64(offset), len(data), data); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE blobs SET length = length + $2, hash_state = $3, complete = $4 WHERE upload = $1`,
			uh, len(data), hashState, complete)
		return err
	})
}

func (s *Store) ReadBlob(ctx context.Context, download relay.ID, offset uint64, max int) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var uh []byte
	var length int64
	err := s.pool.QueryRow(ctx, `SELECT upload, length FROM blobs WHERE download = $1`, hashID("tainik download\x00", download)).Scan(&uh, &length)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap(err)
	}
	if offset > uint64(length) {
		return nil, &store.OffsetError{Length: uint64(length)}
	}
	rows, err := s.pool.Query(ctx, `SELECT off, data FROM chunks WHERE upload = $1 AND off + len > $2 AND off < $3 ORDER BY off`,
		uh, int64(offset), int64(offset)+int64(max))
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return nil, wrap(err)
		}
		if uint64(off) < offset {
			data = data[offset-uint64(off):]
		}
		data = data[:min(len(data), max-len(out))]
		out = append(out, data...)
	}
	return out, wrap(rows.Err())
}

func (s *Store) DeleteBlob(ctx context.Context, upload relay.ID) error {
	if err := s.check(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM blobs WHERE upload = $1`, hashID("tainik upload\x00", upload))
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// expireBatch bounds the rows one Expire deletes per table.
const expireBatch = 10000

// Expire may run on every node at once: rows another node deletes first
// are simply not counted, and queue rows are locked in key order so two
// nodes' expiries cannot deadlock each other.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `DELETE FROM messages WHERE (queue, seq) IN (
				SELECT queue, seq FROM messages WHERE expires < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING queue, acked`, now, expireBatch)
		if err != nil {
			return err
		}
		live := map[string]int{}
		for rows.Next() {
			var q []byte
			var acked bool
			if err := rows.Scan(&q, &acked); err != nil {
				rows.Close()
				return err
			}
			n++ // tombstones too: the caller sweeps until nothing is left
			if !acked {
				live[string(q)]++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		keys := make([]string, 0, len(live))
		for k := range live {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if _, err := tx.Exec(ctx, `UPDATE queues SET count = greatest(count - $2, 0) WHERE key = $1`, []byte(k), live[k]); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM entries WHERE (log, seq) IN (
			SELECT log, seq FROM entries WHERE expires < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now, expireBatch)
		if err != nil {
			return err
		}
		n += int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `DELETE FROM blobs WHERE upload IN (
			SELECT upload FROM blobs WHERE expires < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now, expireBatch)
		if err != nil {
			return err
		}
		n += int(tag.RowsAffected())
		return nil
	})
	return n, err
}
