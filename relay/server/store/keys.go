package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tainik/tainik/relay"
)

// Key layout and record encodings shared by the embedded engines (bbolt and
// pebble), so both store the same bytes.

const (
	expMessage = 'm'
	expEntry   = 'e'
	expBlob    = 'b'
	// expTombstone: an acknowledged message's id, kept for duplicate
	// detection until the message would have expired.
	expTombstone = 't'
)

// Labels of hashID: the embedded stores keep identifiers and capability
// tokens only hashed, one label per kind (PostgreSQL uses the same).
const (
	labelRecipient = "tainik recipient\x00"
	labelSender    = "tainik sender\x00"
	labelUpload    = "tainik upload\x00"
	labelDownload  = "tainik download\x00"
)

func hashID(label string, id relay.ID) relay.ID {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(id[:])
	var out relay.ID
	h.Sum(out[:0])
	return out
}

func seqKey(prefix []byte, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

// tombstoneUntil is when an acknowledged message's tombstone is dropped:
// at keep, or when the message would have expired if that is earlier.
func tombstoneUntil(exp, keep time.Time) time.Time {
	if keep.Before(exp) {
		return keep
	}
	return exp
}

func expiryKey(t time.Time, kind byte, ref []byte) []byte {
	k := make([]byte, 9+len(ref))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	k[8] = kind
	copy(k[9:], ref)
	return k
}

// queueRecord is a queue's stored form.
type queueRecord struct {
	recipientKey [32]byte
	senderHash   relay.ID
	contact      bool
	senderKey    []byte
	nextSeq      uint64
	count        uint32
}

func (r *queueRecord) marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes(r.recipientKey[:])
	b.AddBytes(r.senderHash[:])
	if r.contact {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.senderKey) })
	b.AddUint64(r.nextSeq)
	b.AddUint32(r.count)
	return b.BytesOrPanic()
}

func parseQueueRecord(v []byte) (*queueRecord, error) {
	s := cryptobyte.String(v)
	r := new(queueRecord)
	var contact uint8
	var sk cryptobyte.String
	if !s.CopyBytes(r.recipientKey[:]) || !s.CopyBytes(r.senderHash[:]) || !s.ReadUint8(&contact) ||
		!s.ReadUint8LengthPrefixed(&sk) || !s.ReadUint64(&r.nextSeq) || !s.ReadUint32(&r.count) || !s.Empty() {
		return nil, errors.New("store: corrupt queue record")
	}
	r.contact = contact == 1
	if len(sk) > 0 {
		r.senderKey = append([]byte(nil), sk...)
	}
	return r, nil
}

func (r *queueRecord) queue(key relay.ID) Queue {
	return Queue{Key: key, RecipientKey: r.recipientKey, SenderKey: r.senderKey, Contact: r.contact, Messages: int(r.count)}
}

func marshalLog(l *Log) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(l.GroupID) })
	b.AddUint64(l.Epoch)
	b.AddBytes(l.TokenHash[:])
	b.AddUint64(l.NextSeq)
	return b.BytesOrPanic()
}

func parseLog(id relay.ID, v []byte) (Log, error) {
	s := cryptobyte.String(v)
	l := Log{ID: id}
	var g cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&g) || !s.ReadUint64(&l.Epoch) || !s.CopyBytes(l.TokenHash[:]) || !s.ReadUint64(&l.NextSeq) || !s.Empty() {
		return Log{}, errors.New("store: corrupt log record")
	}
	l.GroupID = append([]byte(nil), g...)
	return l, nil
}

// CheckEpoch applies the group log's epoch rule to a message for epoch e
// in a log at epoch cur, and returns the log's epoch after it. Every store
// implementation uses it so the rule is stated once.
func CheckEpoch(cur, e uint64, commit bool) (uint64, error) {
	switch {
	case e > cur:
		return cur, &EpochError{Current: cur, Future: true}
	case commit && e == cur && cur == math.MaxUint64:
		return cur, &EpochError{Current: cur} // the last epoch there is
	case commit && e == cur:
		return cur + 1, nil
	case commit:
		return cur, &EpochError{Current: cur}
	case e == cur || e+1 == cur:
		return cur, nil
	}
	return cur, &EpochError{Current: cur}
}

// blob values: download hash[32] | size | length | digest[32] | complete u8 | expires | hashstate<u16>.
func marshalBlob(dl relay.ID, b *Blob) []byte {
	bb := cryptobyte.NewBuilder(nil)
	bb.AddBytes(dl[:])
	bb.AddUint64(b.Size)
	bb.AddUint64(b.Length)
	bb.AddBytes(b.Digest[:])
	if b.Complete {
		bb.AddUint8(1)
	} else {
		bb.AddUint8(0)
	}
	bb.AddUint64(uint64(b.Expires.UnixNano()))
	bb.AddUint16LengthPrefixed(func(bb *cryptobyte.Builder) { bb.AddBytes(b.HashState) })
	return bb.BytesOrPanic()
}

func parseBlob(v []byte) (relay.ID, Blob, error) {
	s := cryptobyte.String(v)
	var dl relay.ID
	var b Blob
	var complete uint8
	var exp uint64
	var hs cryptobyte.String
	if !s.CopyBytes(dl[:]) || !s.ReadUint64(&b.Size) || !s.ReadUint64(&b.Length) || !s.CopyBytes(b.Digest[:]) ||
		!s.ReadUint8(&complete) || !s.ReadUint64(&exp) || !s.ReadUint16LengthPrefixed(&hs) || !s.Empty() {
		return dl, Blob{}, errors.New("store: corrupt blob record")
	}
	b.Complete = complete == 1
	b.Expires = time.Unix(0, int64(exp))
	b.HashState = append([]byte(nil), hs...)
	return dl, b, nil
}

// Message records, the same in both embedded engines:
// msgid[16] | expires u64 | payload.
const messageHeader = 24

func marshalMessage(m *Message) []byte {
	v := make([]byte, messageHeader+len(m.Payload))
	putMessage(v, m)
	return v
}

// putMessage writes m's record into v, which has its exact size.
func putMessage(v []byte, m *Message) {
	copy(v, m.ID[:])
	binary.BigEndian.PutUint64(v[16:], uint64(m.Expires.UnixNano()))
	copy(v[messageHeader:], m.Payload)
}

// messageExpires reads a message record's expiry; v holds at least
// messageHeader bytes.
func messageExpires(v []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[16:24])))
}

// parseMessage copies a message record (at least messageHeader bytes)
// out of the engine's memory.
func parseMessage(seq uint64, v []byte) Message {
	m := Message{Seq: seq, Expires: messageExpires(v), Payload: append([]byte(nil), v[messageHeader:]...)}
	copy(m.ID[:], v)
	return m
}

// Log entry records, the same in both embedded engines:
// epoch u64 | commit u8 | expires u64 | message.
const entryHeader = 17

func marshalEntry(e *Entry) []byte {
	v := make([]byte, entryHeader+len(e.Message))
	binary.BigEndian.PutUint64(v, e.Epoch)
	if e.Commit {
		v[8] = 1
	}
	binary.BigEndian.PutUint64(v[9:], uint64(e.Expires.UnixNano()))
	copy(v[entryHeader:], e.Message)
	return v
}

// entryExpired reports whether an entry record (at least entryHeader
// bytes) expired at or before now (Unix nanoseconds).
func entryExpired(v []byte, now int64) bool {
	return int64(binary.BigEndian.Uint64(v[9:17])) <= now
}

// parseEntry copies an entry record (at least entryHeader bytes) out of
// the engine's memory.
func parseEntry(seq uint64, v []byte) Entry {
	return Entry{
		Seq:     seq,
		Epoch:   binary.BigEndian.Uint64(v),
		Commit:  v[8] == 1,
		Expires: time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))),
		Message: append([]byte(nil), v[entryHeader:]...),
	}
}

// appendChunk appends to out the part of a blob chunk that starts at
// start and holds v which lies at or after offset, up to max bytes of out
// in all.
func appendChunk(out []byte, start uint64, v []byte, offset uint64, max int) []byte {
	if start+uint64(len(v)) <= offset {
		return out
	}
	if offset > start {
		v = v[offset-start:]
	}
	if len(v) > max-len(out) {
		v = v[:max-len(out)]
	}
	return append(out, v...)
}
