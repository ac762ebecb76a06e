package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tainik/tainik/relay"
)

// Bolt is the embedded store: one bbolt file. Writes go through a single
// writer goroutine that runs every write queued while the previous flush was
// in progress in one transaction and one fsync (group commit), then answers
// them all.
type Bolt struct {
	db   *bbolt.DB
	ops  chan writeOp
	done chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against sends on ops
	closed    bool

	statMu sync.Mutex
	stats  Stats
}

type writeOp struct {
	fn   func(tx *bbolt.Tx) error
	done chan error
}

const maxBatch = 256

var (
	bQueues  = []byte("queues")
	bSenders = []byte("senders")
	bMsgs    = []byte("msgs")
	bMsgIDs  = []byte("msgids")
	bLogs    = []byte("logs")
	bEntries = []byte("entries")
	bBlobs   = []byte("blobs")
	bBlobDL  = []byte("blobdl")
	bChunks  = []byte("chunks")
	bExpiry  = []byte("expiry")
)

// OpenBolt opens (creating if needed) the bbolt store in dir.
func OpenBolt(dir string) (*Bolt, error) {
	if _, err := os.Stat(filepath.Join(dir, pebbleDir)); err == nil {
		return nil, &EngineError{Dir: dir, Found: "pebble", Want: "bolt"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bbolt.Open(filepath.Join(dir, "relay.db"), 0o600, &bbolt.Options{
		Timeout:        5 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		// Reserve address space up front: growing the mapping blocks
		// every reader while it happens.
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening database: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bQueues, bSenders, bMsgs, bMsgIDs, bLogs, bEntries, bBlobs, bBlobDL, bChunks, bExpiry} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Bolt{db: db, ops: make(chan writeOp, maxBatch), done: make(chan struct{})}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// Stats are the group-commit counters of the embedded store.
type Stats struct {
	Commits    uint64        // write transactions, each one fsync
	Writes     uint64        // writes committed in them
	ApplyTime  time.Duration // running the writes inside transactions
	CommitTime time.Duration // committing: writing pages and fsync
}

// Stats returns the store's counters.
func (s *Bolt) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	return s.stats
}

func (s *Bolt) writer() {
	defer s.wg.Done()
	batch := make([]writeOp, 0, maxBatch)
	errs := make([]error, 0, maxBatch)
	for {
		var ok bool
		if batch, ok = gather(s.ops, s.done, batch, maxBatch); !ok {
			return
		}
		errs = errs[:0]
		t0 := time.Now()
		var t1 time.Time
		tx, err := s.db.Begin(true)
		if err == nil {
			for _, o := range batch {
				// A write function returns an error only before it
				// changes anything, so the others can still commit.
				errs = append(errs, o.fn(tx))
			}
			t1 = time.Now()
			err = tx.Commit()
		}
		t2 := time.Now()
		for i, o := range batch {
			if err != nil {
				o.done <- fmt.Errorf("store: commit: %w", err)
			} else {
				o.done <- errs[i]
			}
		}
		s.statMu.Lock()
		s.stats.Commits++
		s.stats.Writes += uint64(len(batch))
		if !t1.IsZero() {
			s.stats.ApplyTime += t1.Sub(t0)
			s.stats.CommitTime += t2.Sub(t1)
		}
		s.statMu.Unlock()
	}
}

// update runs fn in the next group commit and returns once it is on disk.
func (s *Bolt) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	o := writeOp{fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.ops <- o:
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

// Close waits for queued writes, then closes the database.
func (s *Bolt) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

func (s *Bolt) CreateQueue(ctx context.Context, q Queue) error {
	key := hashID(labelRecipient, q.RecipientID)
	sh := hashID(labelSender, q.SenderID)
	rec := &queueRecord{recipientKey: q.RecipientKey, senderHash: sh, contact: q.Contact, senderKey: q.SenderKey, nextSeq: 1}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bQueues).Get(key[:]) != nil || tx.Bucket(bSenders).Get(sh[:]) != nil {
			return ErrExists
		}
		if err := tx.Bucket(bQueues).Put(key[:], rec.marshal()); err != nil {
			return err
		}
		return tx.Bucket(bSenders).Put(sh[:], key[:])
	})
}

func getQueue(tx *bbolt.Tx, key relay.ID) (*queueRecord, error) {
	v := tx.Bucket(bQueues).Get(key[:])
	if v == nil {
		return nil, ErrNotFound
	}
	return parseQueueRecord(v)
}

func (s *Bolt) QueueByRecipient(ctx context.Context, rid relay.ID) (Queue, error) {
	key := hashID(labelRecipient, rid)
	var q Queue
	err := s.db.View(func(tx *bbolt.Tx) error {
		r, err := getQueue(tx, key)
		if err != nil {
			return err
		}
		q = r.queue(key)
		return nil
	})
	return q, err
}

func (s *Bolt) QueueBySender(ctx context.Context, sid relay.ID) (Queue, error) {
	sh := hashID(labelSender, sid)
	var q Queue
	err := s.db.View(func(tx *bbolt.Tx) error {
		k := tx.Bucket(bSenders).Get(sh[:])
		if k == nil {
			return ErrNotFound
		}
		key := relay.ID(k)
		r, err := getQueue(tx, key)
		if err != nil {
			return err
		}
		q = r.queue(key)
		return nil
	})
	return q, err
}

func (s *Bolt) LockQueue(ctx context.Context, key relay.ID, senderKey [32]byte) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getQueue(tx, key)
		if err != nil {
			return err
		}
		if r.senderKey != nil {
			return ErrLocked
		}
		r.senderKey = senderKey[:]
		return tx.Bucket(bQueues).Put(key[:], r.marshal())
	})
}

func (s *Bolt) DeleteQueue(ctx context.Context, key relay.ID) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getQueue(tx, key)
		if err != nil {
			return err
		}
		msgs := tx.Bucket(bMsgs)
		var seqs [][]byte
		c := msgs.Cursor()
		for k, _ := c.Seek(key[:]); k != nil && bytes.HasPrefix(k, key[:]); k, _ = c.Next() {
			seqs = append(seqs, append([]byte(nil), k...))
		}
		for _, k := range seqs {
			if err := deleteMessage(tx, key, r, k, time.Time{}); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bSenders).Delete(r.senderHash[:]); err != nil {
			return err
		}
		return tx.Bucket(bQueues).Delete(key[:])
	})
}

// Message records: marshalMessage (keys.go).
//
// With keep set, the message id stays known as a tombstone until keep or
// until the message would have expired, whichever is first, so a sender's
// retry of an acknowledged message is taken as a duplicate instead of
// being delivered again.
func deleteMessage(tx *bbolt.Tx, key relay.ID, r *queueRecord, mk []byte, keep time.Time) error {
	v := tx.Bucket(bMsgs).Get(mk)
	if v == nil || len(v) < messageHeader {
		return ErrNotFound
	}
	idKey := append(append([]byte(nil), key[:]...), v[:16]...)
	exp := messageExpires(v)
	if err := tx.Bucket(bExpiry).Delete(expiryKey(exp, expMessage, mk)); err != nil {
		return err
	}
	if !keep.IsZero() {
		if err := tx.Bucket(bMsgIDs).Put(idKey, make([]byte, 8)); err != nil {
			return err
		}
		if err := tx.Bucket(bExpiry).Put(expiryKey(tombstoneUntil(exp, keep), expTombstone, idKey), nil); err != nil {
			return err
		}
	} else if err := tx.Bucket(bMsgIDs).Delete(idKey); err != nil {
		return err
	}
	if r.count > 0 {
		r.count--
	}
	return tx.Bucket(bMsgs).Delete(mk)
}

func (s *Bolt) AddMessage(ctx context.Context, key relay.ID, m Message, max int) (uint64, bool, error) {
	var seq uint64
	var dup bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getQueue(tx, key)
		if err != nil {
			return err
		}
		idKey := append(append([]byte(nil), key[:]...), m.ID[:]...)
		if v := tx.Bucket(bMsgIDs).Get(idKey); v != nil {
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
		if err := tx.Bucket(bMsgs).Put(mk, marshalMessage(&m)); err != nil {
			return err
		}
		if err := tx.Bucket(bMsgIDs).Put(idKey, mk[32:]); err != nil {
			return err
		}
		if err := tx.Bucket(bExpiry).Put(expiryKey(m.Expires, expMessage, mk), nil); err != nil {
			return err
		}
		return tx.Bucket(bQueues).Put(key[:], r.marshal())
	})
	return seq, dup, err
}

func (s *Bolt) Messages(ctx context.Context, key relay.ID, after uint64, max, maxBytes int) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bQueues).Get(key[:]) == nil {
			return ErrNotFound
		}
		c := tx.Bucket(bMsgs).Cursor()
		size := 0
		for k, v := c.Seek(seqKey(key[:], after+1)); k != nil && bytes.HasPrefix(k, key[:]) && len(out) < max; k, v = c.Next() {
			if len(out) > 0 && size+len(v) > maxBytes {
				break
			}
			size += len(v)
			out = append(out, parseMessage(binary.BigEndian.Uint64(k[32:]), v))
		}
		return nil
	})
	return out, err
}

func (s *Bolt) AckMessages(ctx context.Context, key relay.ID, ids []relay.MsgID, keep time.Time) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getQueue(tx, key)
		if err != nil {
			return err
		}
		for _, id := range ids {
			idKey := append(append([]byte(nil), key[:]...), id[:]...)
			seq := tx.Bucket(bMsgIDs).Get(idKey)
			if seq == nil || binary.BigEndian.Uint64(seq) == 0 {
				continue
			}
			if err := deleteMessage(tx, key, r, append(key[:], seq...), keep); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return ErrNotFound
		}
		return tx.Bucket(bQueues).Put(key[:], r.marshal())
	})
	return n, err
}

func (s *Bolt) CreateLog(ctx context.Context, l Log) error {
	if l.NextSeq == 0 {
		l.NextSeq = 1
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bLogs)
		if b.Get(l.ID[:]) != nil {
			return ErrExists
		}
		return b.Put(l.ID[:], marshalLog(&l))
	})
}

func getLog(tx *bbolt.Tx, id relay.ID) (Log, error) {
	v := tx.Bucket(bLogs).Get(id[:])
	if v == nil {
		return Log{}, ErrNotFound
	}
	return parseLog(id, v)
}

func (s *Bolt) Log(ctx context.Context, id relay.ID) (Log, error) {
	var l Log
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		l, err = getLog(tx, id)
		return err
	})
	return l, err
}

// Entry records: marshalEntry (keys.go).
func (s *Bolt) AppendLog(ctx context.Context, id relay.ID, e Entry) (uint64, uint64, error) {
	var seq, epoch uint64
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		l, err := getLog(tx, id)
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
		if err := tx.Bucket(bEntries).Put(ek, marshalEntry(&e)); err != nil {
			return err
		}
		if err := tx.Bucket(bExpiry).Put(expiryKey(e.Expires, expEntry, ek), nil); err != nil {
			return err
		}
		return tx.Bucket(bLogs).Put(id[:], marshalLog(&l))
	})
	return seq, epoch, err
}

func (s *Bolt) LogEntries(ctx context.Context, id relay.ID, from uint64, max, maxBytes int) ([]Entry, bool, error) {
	var out []Entry
	more := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bLogs).Get(id[:]) == nil {
			return ErrNotFound
		}
		c := tx.Bucket(bEntries).Cursor()
		size := 0
		now := time.Now().UnixNano()
		for k, v := c.Seek(seqKey(id[:], from)); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
			// Expire may not have swept it yet; it must not be served.
			if entryExpired(v, now) {
				continue
			}
			if len(out) >= max || (len(out) > 0 && size+len(v) > maxBytes) {
				more = true
				break
			}
			size += len(v)
			out = append(out, parseEntry(binary.BigEndian.Uint64(k[32:]), v))
		}
		return nil
	})
	return out, more, err
}

func (s *Bolt) CreateBlob(ctx context.Context, b Blob) error {
	uh := hashID(labelUpload, b.UploadToken)
	dh := hashID(labelDownload, b.DownloadToken)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bBlobs).Get(uh[:]) != nil || tx.Bucket(bBlobDL).Get(dh[:]) != nil {
			return ErrExists
		}
		if err := tx.Bucket(bBlobs).Put(uh[:], marshalBlob(dh, &b)); err != nil {
			return err
		}
		if err := tx.Bucket(bExpiry).Put(expiryKey(b.Expires, expBlob, uh[:]), nil); err != nil {
			return err
		}
		return tx.Bucket(bBlobDL).Put(dh[:], uh[:])
	})
}

func getBlob(tx *bbolt.Tx, uh relay.ID) (relay.ID, Blob, error) {
	v := tx.Bucket(bBlobs).Get(uh[:])
	if v == nil {
		return relay.ID{}, Blob{}, ErrNotFound
	}
	return parseBlob(v)
}

func (s *Bolt) BlobByUpload(ctx context.Context, upload relay.ID) (Blob, error) {
	uh := hashID(labelUpload, upload)
	var b Blob
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		_, b, err = getBlob(tx, uh)
		return err
	})
	return b, err
}

func (s *Bolt) BlobByDownload(ctx context.Context, download relay.ID) (Blob, error) {
	dh := hashID(labelDownload, download)
	var b Blob
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		uh := tx.Bucket(bBlobDL).Get(dh[:])
		if uh == nil {
			return ErrNotFound
		}
		_, b, err = getBlob(tx, relay.ID(uh))
		return err
	})
	return b, err
}

func (s *Bolt) PutChunk(ctx context.Context, upload relay.ID, offset uint64, data, hashState []byte, complete bool) error {
	uh := hashID(labelUpload, upload)
	return s.update(ctx, func(tx *bbolt.Tx) error {
		dl, b, err := getBlob(tx, uh)
		if err != nil {
			return err
		}
		if b.Complete || offset != b.Length {
			return &OffsetError{Length: b.Length}
		}
		if err := tx.Bucket(bChunks).Put(seqKey(uh[:], offset), data); err != nil {
			return err
		}
		b.Length += uint64(len(data))
		b.HashState = hashState
		b.Complete = complete
		return tx.Bucket(bBlobs).Put(uh[:], marshalBlob(dl, &b))
	})
}

func (s *Bolt) ReadBlob(ctx context.Context, download relay.ID, offset uint64, max int) ([]byte, error) {
	dh := hashID(labelDownload, download)
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		uhb := tx.Bucket(bBlobDL).Get(dh[:])
		if uhb == nil {
			return ErrNotFound
		}
		uh := relay.ID(uhb)
		_, b, err := getBlob(tx, uh)
		if err != nil {
			return err
		}
		if offset > b.Length {
			return &OffsetError{Length: b.Length}
		}
		c := tx.Bucket(bChunks).Cursor()
		k, v := c.Seek(seqKey(uh[:], offset))
		if k == nil || !bytes.Equal(k, seqKey(uh[:], offset)) {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, uh[:]) && len(out) < max; k, v = c.Next() {
			out = appendChunk(out, binary.BigEndian.Uint64(k[32:]), v, offset, max)
		}
		return nil
	})
	return out, err
}

func deleteBlob(tx *bbolt.Tx, uh relay.ID) error {
	dl, b, err := getBlob(tx, uh)
	if err != nil {
		return err
	}
	c := tx.Bucket(bChunks).Cursor()
	var keys [][]byte
	for k, _ := c.Seek(uh[:]); k != nil && bytes.HasPrefix(k, uh[:]); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := tx.Bucket(bChunks).Delete(k); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bExpiry).Delete(expiryKey(b.Expires, expBlob, uh[:])); err != nil {
		return err
	}
	if err := tx.Bucket(bBlobDL).Delete(dl[:]); err != nil {
		return err
	}
	return tx.Bucket(bBlobs).Delete(uh[:])
}

func (s *Bolt) DeleteBlob(ctx context.Context, upload relay.ID) error {
	uh := hashID(labelUpload, upload)
	return s.update(ctx, func(tx *bbolt.Tx) error { return deleteBlob(tx, uh) })
}

// expireBatch bounds the work of one Expire transaction.
const expireBatch = 10000

func (s *Bolt) Expire(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		limit := expiryKey(now, 0, nil)[:8]
		var keys [][]byte
		c := tx.Bucket(bExpiry).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) < 0 && len(keys) < expireBatch; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			ref := k[9:]
			var err error
			switch k[8] {
			case expMessage:
				key := relay.ID(ref[:32])
				var r *queueRecord
				if r, err = getQueue(tx, key); err == nil {
					if err = deleteMessage(tx, key, r, ref, time.Time{}); err == nil {
						err = tx.Bucket(bQueues).Put(key[:], r.marshal())
					}
				}
			case expEntry:
				err = tx.Bucket(bEntries).Delete(ref)
			case expTombstone:
				err = tx.Bucket(bMsgIDs).Delete(ref)
			case expBlob:
				err = deleteBlob(tx, relay.ID(ref))
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			// deleteMessage and deleteBlob remove the expiry key
			// themselves; entries and orphans need it removed here.
			if err := tx.Bucket(bExpiry).Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
