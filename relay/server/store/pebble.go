package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"

	"github.com/tainik/tainik/relay"
)

// Pebble is the embedded store on pebble, an LSM tree: a write appends to a
// log and a memtable instead of rewriting B+tree pages, so a durable write
// costs its own bytes plus a share of one fsync.
//
// Writes are group-committed by writer goroutines, one per partition of the
// keyspace (a queue, a log or a blob belongs to the partition its key
// hashes to). A writer applies every write queued for its partition to one
// indexed batch, whose reads see the batch's own writes, so per-queue
// sequence numbers and the duplicate and epoch checks are race-free; the
// partitions' batches go into pebble's commit pipeline in parallel. Writes
// that span partitions (CreateQueue, CreateBlob, Expire) run alone, while no
// partition is applying a batch.
//
// A writer does not wait for its batch's WAL sync: pebble makes a batch
// visible as soon as it is in the memtable, so the next batch can be built
// while this one syncs. The syncer goroutine waits for the syncs and
// answers the writes. No write is answered, and no read returns, before
// everything it may have seen is on disk (see waitDurable). This uses
// pebble's DB.ApplyNoSyncWait and Batch.SyncWait, which pebble v1 marks
// experimental.
//
// The partitions exist only in memory: their number follows GOMAXPROCS
// and may change between runs.
type Pebble struct {
	db      *pebble.DB
	parts   []*pebblePart
	commits chan *pebbleCommit // from the writers to the syncer
	done    chan struct{}
	writers sync.WaitGroup
	synced  chan struct{} // closed when the syncer has answered everything

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against sends on ops and reads of a closed db
	closed    bool

	// excl is held shared by a writer applying a partition's batch and
	// exclusively by one applying a write that spans partitions.
	excl sync.RWMutex

	// published numbers the group commits, taken before each is made
	// visible; durable is the highest number up to which every commit is
	// on disk (or had nothing to write).
	published atomic.Uint64
	durMu     sync.Mutex
	durCond   *sync.Cond
	durable   uint64

	// broken is set when a commit fails: later writes may have been
	// built on its state, so the store takes no more writes.
	broken atomic.Pointer[error]

	// senders caches QueueBySender.
	senders queueCache

	statMu sync.Mutex
	stats  Stats
}

var _ Store = (*Pebble)(nil)

// pebblePart is a partition's writer state.
type pebblePart struct {
	ops chan pebbleOp
	// queues caches the partition's queue records. Only the
	// partition's writer, or a writer holding excl exclusively, uses it.
	queues map[relay.ID]queueRecord
}

type pebbleOp struct {
	fn     func(b *pebble.Batch) error
	done   chan error
	global bool // spans partitions
}

// pebbleCommit is one group commit on its way from a writer, which applied
// it, to the syncer, which waits for its WAL sync and answers.
type pebbleCommit struct {
	b      *pebble.Batch // nil when the writes changed nothing
	err    error         // from applying the batch
	ops    []pebbleOp
	errs   []error
	seq    uint64 // its number in published
	target uint64 // published when it was applied: what it may have read
	t0, t1 time.Time
}

// pebbleMaxBatch bounds the writes of one group commit.
const pebbleMaxBatch = 1024

// pebbleQueueCache bounds a partition's queue record cache.
const pebbleQueueCache = 1 << 16

// pebbleDir is the subdirectory of the data directory that holds pebble's
// files; boltFile is the bbolt store's file (see Open).
const (
	pebbleDir = "pebble"
	boltFile  = "relay.db"
)

// Key prefixes: one keyspace, one leading byte per table. After the prefix
// the keys are the same as the bbolt buckets' (keys.go).
const (
	pQueues  = 'q'
	pSenders = 's'
	pMsgs    = 'm'
	pMsgIDs  = 'i'
	pLogs    = 'l'
	pEntries = 'e'
	pBlobs   = 'b'
	pBlobDL  = 'd'
	pChunks  = 'c'
	pExpiry  = 'x'
)

func pk(table byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 1, n)
	k[0] = table
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// pebbleLogger drops pebble's informational messages (flushes,
// compactions) and turns its fatal errors into a panic.
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any) {}
func (pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("store: pebble: "+format, args...))
}

// pebbleLevels gives every level bloom filters, so that looking up a
// message id that is not there (every new message) skips most tables.
func pebbleLevels() []pebble.LevelOptions {
	l := make([]pebble.LevelOptions, 7)
	for i := range l {
		l[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return l
}

// pebblePartitions is the number of writers: one per core, up to 4.
func pebblePartitions() int {
	return min(max(runtime.GOMAXPROCS(0), 1), 4)
}

// OpenPebble opens (creating if needed) the pebble store in dir. Its files
// are in dir/pebble. It refuses a directory that holds a bbolt store.
func OpenPebble(dir string) (*Pebble, error) {
	if _, err := os.Stat(filepath.Join(dir, boltFile)); err == nil {
		return nil, &EngineError{Dir: dir, Found: "bolt", Want: "pebble"}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref() // the db holds its own reference
	db, err := pebble.Open(filepath.Join(dir, pebbleDir), &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		// A message acknowledged while its memtable is still in
		// memory is dropped at flush and never reaches a table; 16 MiB
		// holds several hundred milliseconds of traffic at full rate.
		// In (noisy) runs on a 2-core machine it was at least as fast
		// as 4 and 64 MiB.
		MemTableSize: 16 << 20,
		// Keep the tables' filter and index blocks cached: every new
		// message looks up an id that is not there.
		Cache:  cache,
		Levels: pebbleLevels(),
		Logger: pebbleLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening pebble: %w", err)
	}
	s := &Pebble{
		db:      db,
		commits: make(chan *pebbleCommit, 16),
		done:    make(chan struct{}),
		synced:  make(chan struct{}),
	}
	s.durCond = sync.NewCond(&s.durMu)
	for range pebblePartitions() {
		s.parts = append(s.parts, &pebblePart{
			ops:    make(chan pebbleOp, pebbleMaxBatch),
			queues: map[relay.ID]queueRecord{},
		})
	}
	for _, p := range s.parts {
		s.writers.Add(1)
		go s.writer(p)
	}
	go func() {
		s.writers.Wait()
		close(s.commits)
	}()
	go s.syncer()
	return s, nil
}

// Stats returns the store's group-commit counters. Each commit is one
// batch synced to the WAL; pebble may sync batches committed together in
// one fsync, so fsyncs are at most Commits.
func (s *Pebble) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	return s.stats
}

// partition returns the partition that owns a queue, log or blob key.
func (s *Pebble) partition(key relay.ID) int {
	return int(key[0]) % len(s.parts)
}

// writer applies the writes queued for partition p, one batch per group,
// and hands each batch to the syncer without waiting for its sync.
func (s *Pebble) writer(p *pebblePart) {
	defer s.writers.Done()
	// ops gathers one round of writes; each batch gets an exact copy of
	// its part, which lives until the syncer answers it.
	ops := make([]pebbleOp, 0, pebbleMaxBatch)
	for {
		var ok bool
		if ops, ok = gather(p.ops, s.done, ops, pebbleMaxBatch); !ok {
			return
		}
		// Runs of partition writes share a batch; a write that
		// spans partitions gets its own.
		for i := 0; i < len(ops); {
			n := 1
			if !ops[i].global {
				for i+n < len(ops) && !ops[i+n].global {
					n++
				}
			}
			s.apply(p, slices.Clone(ops[i:i+n]), ops[i].global)
			i += n
		}
		clear(ops)
	}
}

// apply runs ops in one batch, makes it visible and hands it to the
// syncer.
func (s *Pebble) apply(p *pebblePart, ops []pebbleOp, global bool) {
	if global {
		s.excl.Lock()
		defer s.excl.Unlock()
	} else {
		s.excl.RLock()
		defer s.excl.RUnlock()
	}
	if len(p.queues) > pebbleQueueCache {
		p.queues = map[relay.ID]queueRecord{}
	}
	c := &pebbleCommit{ops: ops, t0: time.Now()}
	if errp := s.broken.Load(); errp != nil {
		c.err = *errp
	} else {
		b := s.db.NewIndexedBatch()
		c.errs = make([]error, len(ops))
		for i, o := range ops {
			// A write function returns an error only before it
			// changes anything, so the others can still commit.
			c.errs[i] = o.fn(b)
		}
		if !b.Empty() {
			c.b = b
		}
	}
	c.seq = s.published.Add(1)
	if c.b != nil {
		if c.err = s.db.ApplyNoSyncWait(c.b, pebble.Sync); c.err != nil {
			s.fail(c.err)
		}
	}
	c.target = s.published.Load()
	c.t1 = time.Now()
	s.commits <- c
}

func (s *Pebble) fail(err error) {
	err = fmt.Errorf("store: commit failed, the store takes no more writes: %w", err)
	s.broken.CompareAndSwap(nil, &err)
}

// syncer waits for each group commit's WAL sync, advances durable, and
// answers a commit's writes once everything it may have read is on disk.
// Pebble writes and syncs its WAL in the order batches become visible, so
// a commit's sync also covers every batch visible before it.
func (s *Pebble) syncer() {
	defer close(s.synced)
	finished := map[uint64]bool{}
	var waiting []*pebbleCommit
	for c := range s.commits {
		err := c.err
		if c.b != nil && err == nil {
			if err = c.b.SyncWait(); err != nil {
				s.fail(err)
			} else {
				c.b.Close()
			}
			c.err = err
		}
		t2 := time.Now()
		finished[c.seq] = true
		s.durMu.Lock()
		for finished[s.durable+1] {
			delete(finished, s.durable+1)
			s.durable++
		}
		durable := s.durable
		s.durMu.Unlock()
		s.durCond.Broadcast()

		s.statMu.Lock()
		if c.b != nil {
			s.stats.Commits++
		}
		s.stats.Writes += uint64(len(c.ops))
		s.stats.ApplyTime += c.t1.Sub(c.t0)
		s.stats.CommitTime += t2.Sub(c.t1)
		s.statMu.Unlock()

		waiting = append(waiting, c)
		kept := waiting[:0]
		for _, w := range waiting {
			if w.target > durable {
				kept = append(kept, w)
			} else {
				w.answer()
			}
		}
		clear(waiting[len(kept):])
		waiting = kept
	}
	// Every commit has been through the loop and synced, so none should
	// be left; answer any that is, rather than leave a caller hanging.
	for _, w := range waiting {
		w.answer()
	}
}

func (c *pebbleCommit) answer() {
	for i, o := range c.ops {
		if c.err != nil {
			o.done <- fmt.Errorf("store: commit: %w", c.err)
		} else {
			o.done <- c.errs[i]
		}
	}
}

// waitDurable waits until every group commit made visible before it was
// called is on disk.
func (s *Pebble) waitDurable() {
	target := s.published.Load()
	s.durMu.Lock()
	for s.durable < target {
		s.durCond.Wait()
	}
	s.durMu.Unlock()
}

// update runs fn in the next group commit of partition part (-1 for a write
// that spans partitions) and returns once it is on disk.
func (s *Pebble) update(ctx context.Context, part int, fn func(b *pebble.Batch) error) error {
	o := pebbleOp{fn: fn, done: make(chan error, 1)}
	if part < 0 {
		o.global, part = true, 0
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.parts[part].ops <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once queued the write will be committed or fail; wait for the
	// outcome even if ctx ends, so the caller never acknowledges a write
	// that is not on disk nor reports failure for one that is.
	return <-o.done
}

// pebbleReader is what reads need: a snapshot, or a writer's batch.
type pebbleReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// view runs fn on a snapshot. The snapshot may hold writes whose WAL sync
// has not returned yet; view waits for them before returning, so no read
// answers with data that a crash could take back.
func (s *Pebble) view(fn func(r pebbleReader) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	snap := s.db.NewSnapshot()
	err := fn(snap)
	snap.Close()
	s.mu.RUnlock()
	s.waitDurable()
	// A failed sync still counts as finished in durable; what this
	// read saw may then be lost in a crash, so it must not be used.
	if errp := s.broken.Load(); errp != nil {
		return fmt.Errorf("store: an earlier commit failed, refusing reads: %w", *errp)
	}
	return err
}

// pget returns a copy of key's value, and whether it exists.
func pget(r pebbleReader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte{}, v...)
	closer.Close()
	return out, true, nil
}

func pexists(r pebbleReader, key []byte) (bool, error) {
	_, ok, err := pget(r, key)
	return ok, err
}

// prefixIter returns an iterator over the keys that start with prefix, from
// start (which must also start with prefix; nil for the first).
func prefixIter(r pebbleReader, prefix, start []byte) (*pebble.Iterator, error) {
	if start == nil {
		start = prefix
	}
	return r.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: prefixEnd(prefix)})
}

func pgetQueue(r pebbleReader, key relay.ID) (*queueRecord, error) {
	v, ok, err := pget(r, pk(pQueues, key[:]))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return parseQueueRecord(v)
}

// queue returns a copy of a queue record, for a write function.
func (s *Pebble) queue(b *pebble.Batch, key relay.ID) (*queueRecord, error) {
	cache := s.parts[s.partition(key)].queues
	if r, ok := cache[key]; ok {
		return &r, nil
	}
	r, err := pgetQueue(b, key)
	if err != nil {
		return nil, err
	}
	cache[key] = *r
	return r, nil
}

// putQueue stores a queue record, for a write function.
func (s *Pebble) putQueue(b *pebble.Batch, key relay.ID, r *queueRecord) error {
	cache := s.parts[s.partition(key)].queues
	if err := b.Set(pk(pQueues, key[:]), r.marshal(), nil); err != nil {
		delete(cache, key)
		return err
	}
	cache[key] = *r
	return nil
}

// dropQueue deletes a queue record, for a write function.
func (s *Pebble) dropQueue(b *pebble.Batch, key relay.ID) error {
	delete(s.parts[s.partition(key)].queues, key)
	return b.Delete(pk(pQueues, key[:]), nil)
}

func (s *Pebble) CreateQueue(ctx context.Context, q Queue) error {
	key := hashID(labelRecipient, q.RecipientID)
	sh := hashID(labelSender, q.SenderID)
	rec := &queueRecord{recipientKey: q.RecipientKey, senderHash: sh, contact: q.Contact, senderKey: q.SenderKey, nextSeq: 1}
	return s.update(ctx, -1, func(b *pebble.Batch) error {
		qk, sk := pk(pQueues, key[:]), pk(pSenders, sh[:])
		for _, k := range [][]byte{qk, sk} {
			if ok, err := pexists(b, k); err != nil {
				return err
			} else if ok {
				return ErrExists
			}
		}
		if err := s.putQueue(b, key, rec); err != nil {
			return err
		}
		return b.Set(sk, key[:], nil)
	})
}

func (s *Pebble) QueueByRecipient(ctx context.Context, rid relay.ID) (Queue, error) {
	key := hashID(labelRecipient, rid)
	var q Queue
	err := s.view(func(r pebbleReader) error {
		rec, err := pgetQueue(r, key)
		if err != nil {
			return err
		}
		q = rec.queue(key)
		return nil
	})
	return q, err
}

func (s *Pebble) QueueBySender(ctx context.Context, sid relay.ID) (Queue, error) {
	sh := hashID(labelSender, sid)
	q, gen, ok := s.senders.get(sh)
	if ok {
		return q, nil
	}
	err := s.view(func(r pebbleReader) error {
		k, ok, err := pget(r, pk(pSenders, sh[:]))
		if err != nil {
			return err
		}
		if !ok || len(k) != len(relay.ID{}) {
			return ErrNotFound
		}
		key := relay.ID(k)
		rec, err := pgetQueue(r, key)
		if err != nil {
			return err
		}
		q = rec.queue(key)
		q.Messages = 0
		return nil
	})
	if err == nil {
		s.senders.put(sh, q, gen)
	}
	return q, err
}

func (s *Pebble) LockQueue(ctx context.Context, key relay.ID, senderKey [32]byte) error {
	var sh relay.ID
	err := s.update(ctx, s.partition(key), func(b *pebble.Batch) error {
		r, err := s.queue(b, key)
		if err != nil {
			return err
		}
		if r.senderKey != nil {
			return ErrLocked
		}
		sh = r.senderHash
		r.senderKey = senderKey[:]
		return s.putQueue(b, key, r)
	})
	s.senders.forget(sh)
	return err
}

func (s *Pebble) DeleteQueue(ctx context.Context, key relay.ID) error {
	var sh relay.ID
	defer func() { s.senders.forget(sh) }()
	return s.update(ctx, s.partition(key), func(b *pebble.Batch) error {
		r, err := s.queue(b, key)
		if err != nil {
			return err
		}
		sh = r.senderHash
		it, err := prefixIter(b, pk(pMsgs, key[:]), nil)
		if err != nil {
			return err
		}
		var mks [][]byte
		for ok := it.First(); ok; ok = it.Next() {
			mks = append(mks, append([]byte(nil), it.Key()[1:]...))
		}
		if err := it.Close(); err != nil {
			return err
		}
		for _, mk := range mks {
			if err := pdeleteMessage(b, key, r, mk, time.Time{}); err != nil {
				return err
			}
		}
		if err := b.Delete(pk(pSenders, r.senderHash[:]), nil); err != nil {
			return err
		}
		return s.dropQueue(b, key)
	})
}

// pdeleteMessage deletes the message at mk (queue key | seq) and its index
// entries; with keep set its id stays known as a tombstone until keep or
// until the message would have expired, whichever is first, as in Bolt.
func pdeleteMessage(b *pebble.Batch, key relay.ID, r *queueRecord, mk []byte, keep time.Time) error {
	v, ok, err := pget(b, pk(pMsgs, mk))
	if err != nil {
		return err
	}
	if !ok || len(v) < messageHeader {
		return ErrNotFound
	}
	return pdeleteIndexed(b, key, r, mk, relay.MsgID(v[:16]), messageExpires(v), keep)
}

// pdeleteIndexed is pdeleteMessage for a caller that knows the message's
// id and expiry (from its id index entry), so the message is not read.
func pdeleteIndexed(b *pebble.Batch, key relay.ID, r *queueRecord, mk []byte, id relay.MsgID, exp, keep time.Time) error {
	idKey := pk(pMsgIDs, key[:], id[:])
	if err := b.Delete(pk(pExpiry, expiryKey(exp, expMessage, mk)), nil); err != nil {
		return err
	}
	if !keep.IsZero() {
		if err := b.Set(idKey, make([]byte, 8), nil); err != nil {
			return err
		}
		if err := b.Set(pk(pExpiry, expiryKey(tombstoneUntil(exp, keep), expTombstone, idKey[1:])), nil, nil); err != nil {
			return err
		}
	} else if err := b.Delete(idKey, nil); err != nil {
		return err
	}
	if r.count > 0 {
		r.count--
	}
	return b.Delete(pk(pMsgs, mk), nil)
}

// The id index maps a queue's message id to what an acknowledgement
// needs: the message's sequence number and expiry (16 bytes), or only its
// sequence number (8 bytes, as written before the expiry was added), or,
// once acknowledged, 8 zero bytes (a tombstone).
func pidValue(seq uint64, exp time.Time) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), seq)
	return binary.BigEndian.AppendUint64(v, uint64(exp.UnixNano()))
}

func (s *Pebble) AddMessage(ctx context.Context, key relay.ID, m Message, max int) (uint64, bool, error) {
	var seq uint64
	var dup bool
	err := s.update(ctx, s.partition(key), func(b *pebble.Batch) error {
		r, err := s.queue(b, key)
		if err != nil {
			return err
		}
		idKey := pk(pMsgIDs, key[:], m.ID[:])
		if v, ok, err := pget(b, idKey); err != nil {
			return err
		} else if ok && len(v) >= 8 {
			seq, dup = binary.BigEndian.Uint64(v), true
			return nil
		}
		if int(r.count) >= max {
			return ErrQuota
		}
		seq = r.nextSeq
		r.nextSeq++
		r.count++
		mk := seqKey(key[:], seq)
		// The record is written straight into the batch: one copy
		// of the payload instead of three.
		op := b.SetDeferred(1+len(mk), messageHeader+len(m.Payload))
		op.Key[0] = pMsgs
		copy(op.Key[1:], mk)
		putMessage(op.Value, &m)
		if err := op.Finish(); err != nil {
			return err
		}
		if err := b.Set(idKey, pidValue(seq, m.Expires), nil); err != nil {
			return err
		}
		if err := b.Set(pk(pExpiry, expiryKey(m.Expires, expMessage, mk)), nil, nil); err != nil {
			return err
		}
		return s.putQueue(b, key, r)
	})
	return seq, dup, err
}

func (s *Pebble) Messages(ctx context.Context, key relay.ID, after uint64, max, maxBytes int) ([]Message, error) {
	var out []Message
	err := s.view(func(r pebbleReader) error {
		if ok, err := pexists(r, pk(pQueues, key[:])); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		it, err := prefixIter(r, pk(pMsgs, key[:]), pk(pMsgs, seqKey(key[:], after+1)))
		if err != nil {
			return err
		}
		size := 0
		for ok := it.First(); ok && len(out) < max; ok = it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != 1+32+8 || len(v) < messageHeader {
				it.Close()
				return errors.New("store: corrupt message record")
			}
			if len(out) > 0 && size+len(v) > maxBytes {
				break
			}
			size += len(v)
			out = append(out, parseMessage(binary.BigEndian.Uint64(k[33:]), v))
		}
		return it.Close()
	})
	return out, err
}

func (s *Pebble) AckMessages(ctx context.Context, key relay.ID, ids []relay.MsgID, keep time.Time) (int, error) {
	n := 0
	err := s.update(ctx, s.partition(key), func(b *pebble.Batch) error {
		r, err := s.queue(b, key)
		if err != nil {
			return err
		}
		for _, id := range ids {
			v, ok, err := pget(b, pk(pMsgIDs, key[:], id[:]))
			if err != nil {
				return err
			}
			if !ok || (len(v) != 8 && len(v) != 16) || binary.BigEndian.Uint64(v) == 0 {
				continue
			}
			mk := seqKey(key[:], binary.BigEndian.Uint64(v))
			if len(v) == 16 {
				exp := time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))
				err = pdeleteIndexed(b, key, r, mk, id, exp, keep)
			} else if err = pdeleteMessage(b, key, r, mk, keep); errors.Is(err, ErrNotFound) {
				// An index entry without its message: drop it
				// rather than fail a batch this loop may already
				// have changed.
				if err := b.Delete(pk(pMsgIDs, key[:], id[:]), nil); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return ErrNotFound
		}
		return s.putQueue(b, key, r)
	})
	return n, err
}

func (s *Pebble) CreateLog(ctx context.Context, l Log) error {
	if l.NextSeq == 0 {
		l.NextSeq = 1
	}
	return s.update(ctx, s.partition(l.ID), func(b *pebble.Batch) error {
		k := pk(pLogs, l.ID[:])
		if ok, err := pexists(b, k); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		return b.Set(k, marshalLog(&l), nil)
	})
}

func pgetLog(r pebbleReader, id relay.ID) (Log, error) {
	v, ok, err := pget(r, pk(pLogs, id[:]))
	if err != nil {
		return Log{}, err
	}
	if !ok {
		return Log{}, ErrNotFound
	}
	return parseLog(id, v)
}

func (s *Pebble) Log(ctx context.Context, id relay.ID) (Log, error) {
	var l Log
	err := s.view(func(r pebbleReader) (err error) {
		l, err = pgetLog(r, id)
		return err
	})
	return l, err
}

// Entry records: marshalEntry (keys.go).
func (s *Pebble) AppendLog(ctx context.Context, id relay.ID, e Entry) (uint64, uint64, error) {
	var seq, epoch uint64
	err := s.update(ctx, s.partition(id), func(b *pebble.Batch) error {
		l, err := pgetLog(b, id)
		if err != nil {
			return err
		}
		epoch, err = CheckEpoch(l.Epoch, e.Epoch, e.Commit)
		if err != nil {
			return err
		}
		seq = l.NextSeq
		l.NextSeq++
		l.Epoch = epoch
		ek := seqKey(id[:], seq)
		if err := b.Set(pk(pEntries, ek), marshalEntry(&e), nil); err != nil {
			return err
		}
		if err := b.Set(pk(pExpiry, expiryKey(e.Expires, expEntry, ek)), nil, nil); err != nil {
			return err
		}
		return b.Set(pk(pLogs, id[:]), marshalLog(&l), nil)
	})
	return seq, epoch, err
}

func (s *Pebble) LogEntries(ctx context.Context, id relay.ID, from uint64, max, maxBytes int) ([]Entry, bool, error) {
	var out []Entry
	more := false
	err := s.view(func(r pebbleReader) error {
		if ok, err := pexists(r, pk(pLogs, id[:])); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		it, err := prefixIter(r, pk(pEntries, id[:]), pk(pEntries, seqKey(id[:], from)))
		if err != nil {
			return err
		}
		size := 0
		now := time.Now().UnixNano()
		for ok := it.First(); ok; ok = it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != 1+32+8 || len(v) < entryHeader {
				it.Close()
				return errors.New("store: corrupt log entry")
			}
			// Expire may not have swept it yet; it must not be served.
			if entryExpired(v, now) {
				continue
			}
			if len(out) >= max || (len(out) > 0 && size+len(v) > maxBytes) {
				more = true
				break
			}
			size += len(v)
			out = append(out, parseEntry(binary.BigEndian.Uint64(k[33:]), v))
		}
		return it.Close()
	})
	return out, more, err
}

func (s *Pebble) CreateBlob(ctx context.Context, bl Blob) error {
	uh := hashID(labelUpload, bl.UploadToken)
	dh := hashID(labelDownload, bl.DownloadToken)
	return s.update(ctx, -1, func(b *pebble.Batch) error {
		uk, dk := pk(pBlobs, uh[:]), pk(pBlobDL, dh[:])
		for _, k := range [][]byte{uk, dk} {
			if ok, err := pexists(b, k); err != nil {
				return err
			} else if ok {
				return ErrExists
			}
		}
		if err := b.Set(uk, marshalBlob(dh, &bl), nil); err != nil {
			return err
		}
		if err := b.Set(pk(pExpiry, expiryKey(bl.Expires, expBlob, uh[:])), nil, nil); err != nil {
			return err
		}
		return b.Set(dk, uh[:], nil)
	})
}

func pgetBlob(r pebbleReader, uh relay.ID) (relay.ID, Blob, error) {
	v, ok, err := pget(r, pk(pBlobs, uh[:]))
	if err != nil {
		return relay.ID{}, Blob{}, err
	}
	if !ok {
		return relay.ID{}, Blob{}, ErrNotFound
	}
	return parseBlob(v)
}

// pblobByDownload resolves a download capability to the blob's upload hash.
func pblobByDownload(r pebbleReader, download relay.ID) (relay.ID, error) {
	dh := hashID(labelDownload, download)
	uh, ok, err := pget(r, pk(pBlobDL, dh[:]))
	if err != nil {
		return relay.ID{}, err
	}
	if !ok || len(uh) != len(relay.ID{}) {
		return relay.ID{}, ErrNotFound
	}
	return relay.ID(uh), nil
}

func (s *Pebble) BlobByUpload(ctx context.Context, upload relay.ID) (Blob, error) {
	uh := hashID(labelUpload, upload)
	var bl Blob
	err := s.view(func(r pebbleReader) (err error) {
		_, bl, err = pgetBlob(r, uh)
		return err
	})
	return bl, err
}

func (s *Pebble) BlobByDownload(ctx context.Context, download relay.ID) (Blob, error) {
	var bl Blob
	err := s.view(func(r pebbleReader) error {
		uh, err := pblobByDownload(r, download)
		if err != nil {
			return err
		}
		_, bl, err = pgetBlob(r, uh)
		return err
	})
	return bl, err
}

func (s *Pebble) PutChunk(ctx context.Context, upload relay.ID, offset uint64, data, hashState []byte, complete bool) error {
	uh := hashID(labelUpload, upload)
	return s.update(ctx, s.partition(uh), func(b *pebble.Batch) error {
		dl, bl, err := pgetBlob(b, uh)
		if err != nil {
			return err
		}
		if bl.Complete || offset != bl.Length {
			return &OffsetError{Length: bl.Length}
		}
		if err := b.Set(pk(pChunks, seqKey(uh[:], offset)), data, nil); err != nil {
			return err
		}
		bl.Length += uint64(len(data))
		bl.HashState = hashState
		bl.Complete = complete
		return b.Set(pk(pBlobs, uh[:]), marshalBlob(dl, &bl), nil)
	})
}

func (s *Pebble) ReadBlob(ctx context.Context, download relay.ID, offset uint64, max int) ([]byte, error) {
	var out []byte
	err := s.view(func(r pebbleReader) error {
		uh, err := pblobByDownload(r, download)
		if err != nil {
			return err
		}
		_, bl, err := pgetBlob(r, uh)
		if err != nil {
			return err
		}
		if offset > bl.Length {
			return &OffsetError{Length: bl.Length}
		}
		it, err := prefixIter(r, pk(pChunks, uh[:]), nil)
		if err != nil {
			return err
		}
		// Start at the chunk that holds offset: the last one that
		// starts at or before it.
		ok := it.SeekLT(pk(pChunks, seqKey(uh[:], offset+1)))
		for ; ok && len(out) < max; ok = it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != 1+32+8 {
				it.Close()
				return errors.New("store: corrupt blob chunk")
			}
			out = appendChunk(out, binary.BigEndian.Uint64(k[33:]), v, offset, max)
		}
		return it.Close()
	})
	return out, err
}

func pdeleteBlob(b *pebble.Batch, uh relay.ID) error {
	dl, bl, err := pgetBlob(b, uh)
	if err != nil {
		return err
	}
	it, err := prefixIter(b, pk(pChunks, uh[:]), nil)
	if err != nil {
		return err
	}
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	if err := b.Delete(pk(pExpiry, expiryKey(bl.Expires, expBlob, uh[:])), nil); err != nil {
		return err
	}
	if err := b.Delete(pk(pBlobDL, dl[:]), nil); err != nil {
		return err
	}
	return b.Delete(pk(pBlobs, uh[:]), nil)
}

func (s *Pebble) DeleteBlob(ctx context.Context, upload relay.ID) error {
	uh := hashID(labelUpload, upload)
	return s.update(ctx, s.partition(uh), func(b *pebble.Batch) error { return pdeleteBlob(b, uh) })
}

func (s *Pebble) Expire(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.update(ctx, -1, func(b *pebble.Batch) error {
		limit := expiryKey(now, 0, nil)[:8]
		it, err := b.NewIter(&pebble.IterOptions{LowerBound: []byte{pExpiry}, UpperBound: pk(pExpiry, limit)})
		if err != nil {
			return err
		}
		var keys [][]byte
		for ok := it.First(); ok && len(keys) < expireBatch; ok = it.Next() {
			keys = append(keys, append([]byte(nil), it.Key()[1:]...))
		}
		if err := it.Close(); err != nil {
			return err
		}
		for _, k := range keys {
			if len(k) < 9 {
				continue
			}
			ref := k[9:]
			var err error
			switch k[8] {
			case expMessage:
				if len(ref) != 40 {
					break
				}
				key := relay.ID(ref[:32])
				var r *queueRecord
				if r, err = s.queue(b, key); err == nil {
					if err = pdeleteMessage(b, key, r, ref, time.Time{}); err == nil {
						err = s.putQueue(b, key, r)
					}
				}
			case expEntry:
				err = b.Delete(pk(pEntries, ref), nil)
			case expTombstone:
				err = b.Delete(pk(pMsgIDs, ref), nil)
			case expBlob:
				if len(ref) == 32 {
					err = pdeleteBlob(b, relay.ID(ref))
				}
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			// pdeleteMessage and pdeleteBlob remove the expiry key
			// themselves; entries and orphans need it removed here.
			if err := b.Delete(pk(pExpiry, k), nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Close waits for queued writes, then closes the database.
func (s *Pebble) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		<-s.synced
		err = s.db.Close()
	})
	return err
}
