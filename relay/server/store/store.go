// Package store holds the relay's state: queues and their messages, group
// logs, blobs. Store is the one interface the server uses; Open returns the
// embedded implementation (bbolt, one file in the data directory), and
// package storetest is the behaviour suite every implementation passes.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tainik/tainik/relay"
)

// Errors callers branch on. Implementations return them (possibly wrapped).
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	ErrLocked   = errors.New("store: queue already locked")
	ErrQuota    = errors.New("store: quota exceeded")
	ErrClosed   = errors.New("store: closed")
)

// EpochError is returned by AppendLog when a message's epoch does not fit the
// log. Current is the log's epoch; Future is set when the message is ahead
// of it.
type EpochError struct {
	Current uint64
	Future  bool
}

func (e *EpochError) Error() string {
	if e.Future {
		return fmt.Sprintf("store: message epoch is ahead of the log's epoch %d", e.Current)
	}
	return fmt.Sprintf("store: stale epoch, the log is at epoch %d", e.Current)
}

// OffsetError is returned by PutChunk when a chunk does not start at the
// stored length.
type OffsetError struct {
	Length uint64
}

func (e *OffsetError) Error() string {
	return fmt.Sprintf("store: chunk offset does not match stored length %d", e.Length)
}

// Queue is a one-way mailbox. Implementations must not store the
// identifiers in clear: they index by a hash of each, so that a copy of the
// store does not grant the capability to send to or read from a queue.
type Queue struct {
	// Key is the store's internal name for the queue, derived from the
	// recipient id; both lookups return it and the other methods take it.
	Key          relay.ID
	RecipientID  relay.ID
	SenderID     relay.ID
	RecipientKey [32]byte
	SenderKey    []byte // nil until the queue is locked
	Contact      bool
	Messages     int // messages held
}

// Message is a queue message. Seq orders a queue; it is assigned by the
// store.
type Message struct {
	Seq     uint64
	ID      relay.MsgID
	Payload []byte
	Expires time.Time
}

// Log is a group log.
type Log struct {
	ID        relay.ID
	GroupID   []byte
	Epoch     uint64 // the epoch whose commit the log accepts next
	TokenHash [32]byte
	NextSeq   uint64
}

// Entry is a group log entry.
type Entry struct {
	Seq     uint64
	Epoch   uint64
	Commit  bool
	Message []byte
	Expires time.Time
}

// Blob is an upload in progress or a complete blob. HashState is the
// marshalled SHA-256 state over the stored bytes, so an upload can resume
// and be checked without reading it back.
type Blob struct {
	UploadToken   relay.ID
	DownloadToken relay.ID
	Size          uint64
	Length        uint64
	Digest        [32]byte
	Complete      bool
	HashState     []byte
	Expires       time.Time
}

// Store is the relay's storage. All methods are safe for concurrent use.
//
// Durability: when a method that writes returns nil, the write is on disk
// (or, for a networked store, committed); concurrent writes may share one
// flush. Reads see every write that has returned.
type Store interface {
	// CreateQueue stores a new queue. It returns ErrExists if either
	// identifier is taken.
	CreateQueue(ctx context.Context, q Queue) error
	// QueueByRecipient and QueueBySender look a queue up by one of its
	// identifiers; ErrNotFound if there is none. The result's RecipientID
	// and SenderID are zero: the store does not keep them. Only
	// QueueByRecipient fills in Messages.
	QueueByRecipient(ctx context.Context, rid relay.ID) (Queue, error)
	QueueBySender(ctx context.Context, sid relay.ID) (Queue, error)
	// LockQueue sets the queue's sender key; ErrLocked if already set.
	LockQueue(ctx context.Context, key relay.ID, senderKey [32]byte) error
	// DeleteQueue deletes the queue and its messages.
	DeleteQueue(ctx context.Context, key relay.ID) error

	// AddMessage appends m to the queue and returns its sequence number. A
	// message whose ID is in the queue, or has a tombstone (see
	// AckMessages), is not stored again (dup is true), so a sender's
	// retry is not delivered twice. ErrQuota when the queue holds max
	// messages.
	AddMessage(ctx context.Context, key relay.ID, m Message, max int) (seq uint64, dup bool, err error)
	// Messages returns up to max messages with Seq > after, oldest first,
	// stopping before maxBytes of payload (but returning at least one).
	Messages(ctx context.Context, key relay.ID, after uint64, max, maxBytes int) ([]Message, error)
	// AckMessages deletes the messages with the given ids and returns how
	// many it deleted; ids not in the queue are skipped. ErrNotFound if
	// none was there. Each deleted message's id stays as a tombstone
	// until keep, or until the message would have expired if that is
	// earlier; the expiry sweep drops it after that. With a zero keep
	// no tombstone counts: the embedded engines write none, PostgreSQL's
	// is already expired and goes at the next sweep.
	AckMessages(ctx context.Context, key relay.ID, ids []relay.MsgID, keep time.Time) (int, error)

	// CreateLog stores a new log; ErrExists if the id is taken.
	CreateLog(ctx context.Context, l Log) error
	// Log returns a log's state.
	Log(ctx context.Context, id relay.ID) (Log, error)
	// AppendLog appends e to the log atomically with the epoch rule: a
	// commit for epoch E is accepted only when the log is at E, and moves it
	// to E+1; other messages are accepted for the log's epoch and the one
	// before. Otherwise it returns an *EpochError. It returns the entry's
	// sequence number and the log's epoch after the append.
	AppendLog(ctx context.Context, id relay.ID, e Entry) (seq, epoch uint64, err error)
	// LogEntries returns up to max entries with Seq >= from, stopping before
	// maxBytes (but returning at least one), and whether more follow. It
	// skips entries whose Expires has passed, swept or not, so the
	// sequence numbers it returns may have gaps.
	LogEntries(ctx context.Context, id relay.ID, from uint64, max, maxBytes int) ([]Entry, bool, error)

	// CreateBlob stores a new, empty upload.
	CreateBlob(ctx context.Context, b Blob) error
	// BlobByUpload and BlobByDownload look a blob up by a capability.
	BlobByUpload(ctx context.Context, upload relay.ID) (Blob, error)
	BlobByDownload(ctx context.Context, download relay.ID) (Blob, error)
	// PutChunk appends data at offset, which must equal the stored length
	// (else *OffsetError), and stores the new hash state. complete marks
	// the blob finished.
	PutChunk(ctx context.Context, upload relay.ID, offset uint64, data, hashState []byte, complete bool) error
	// ReadBlob reads up to max bytes of a blob from offset.
	ReadBlob(ctx context.Context, download relay.ID, offset uint64, max int) ([]byte, error)
	// DeleteBlob deletes a blob and its chunks.
	DeleteBlob(ctx context.Context, upload relay.ID) error

	// Expire deletes messages, tombstones, log entries and blobs that
	// expired before now, a bounded batch at a time, and returns how many
	// it deleted: call it again until it returns 0.
	Expire(ctx context.Context, now time.Time) (int, error)
	// Close flushes and closes the store.
	Close() error
}

// EngineError is returned when a data directory holds the other embedded
// engine's store.
type EngineError struct {
	Dir   string
	Found string // the engine whose files are there
	Want  string // the engine asked for
}

func (e *EngineError) Error() string {
	return fmt.Sprintf("store: %s holds a %s store; refusing to open it as a %s store: the two engines do not share data (open it with the %s engine, or use another directory)", e.Dir, e.Found, e.Want, e.Found)
}

// Embedded is an embedded store: one process owns it, in a data directory.
type Embedded interface {
	Store
	// Stats returns the group-commit counters.
	Stats() Stats
}

// Engines are the embedded engines, the default first.
var Engines = []string{"pebble", "bolt"}

// OpenEmbedded opens (creating if needed) the embedded store of the named
// engine in dir; "" is the default, pebble. See docs/dependencies.md for
// why.
func OpenEmbedded(engine, dir string) (Embedded, error) {
	switch engine {
	case "", "pebble":
		return OpenPebble(dir)
	case "bolt":
		return OpenBolt(dir)
	}
	return nil, fmt.Errorf("store: unknown engine %q (want pebble or bolt)", engine)
}
