// Package s3blobs keeps the relay's blobs in an S3-compatible object
// store: a Store wraps another store.Store and takes over its blob
// methods, as package blobdir does with a directory.
//
// Objects, under an optional key prefix: meta/<h> is a blob's record
// (length, SHA-256 state, expiry, chunk list), named by a hash of the
// upload capability; data/<h>/<offset>-<nonce> holds each uploaded chunk; dl/<d> maps a
// hash of the download capability to <h>. S3 cannot append, so each chunk
// is its own object, listed in the record. A record is replaced only if it still has the ETag
// it was read with (a conditional PUT, If-Match), so two nodes writing the
// same upload cannot both succeed; the chunk is written before the record,
// and the record's length is the truth, so an interrupted upload resumes
// from it. Capabilities themselves are never written.
package s3blobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// Config locates the bucket.
type Config struct {
	// Endpoint is the server's base URL, e.g. https://s3.eu-west-1.amazonaws.com
	// or http://minio.internal:9000.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every key, e.g. "tainik/".
	Prefix    string
	Region    string // default us-east-1
	AccessKey string
	SecretKey string
	// HTTPClient defaults to one with a 30-second timeout.
	HTTPClient *http.Client
}

// Store is a store.Store whose blobs live in S3. It is safe for
// concurrent use by several processes sharing the bucket.
type Store struct {
	store.Store
	c      *client
	prefix string

	sweepMu   sync.Mutex
	nextSweep time.Time // when Expire next looks for orphaned objects
}

var _ store.Store = (*Store)(nil)

// New returns meta with its blob methods replaced by objects in the
// bucket. Closing the Store closes meta.
func New(meta store.Store, cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3blobs: bad endpoint %q", cfg.Endpoint)
	}
	if cfg.Bucket == "" || cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("s3blobs: bucket, access key and secret key are required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Store{
		Store:  meta,
		c:      &client{http: hc, endpoint: u, bucket: cfg.Bucket, creds: credentials{cfg.AccessKey, cfg.SecretKey, cfg.Region, "s3"}},
		prefix: cfg.Prefix,
	}, nil
}

// Unwrap returns the store that holds everything but blobs.
func (s *Store) Unwrap() store.Store { return s.Store }

func hashName(label string, id relay.ID) string {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(id[:])
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Store) metaKey(uh string) string { return s.prefix + "meta/" + uh }
func (s *Store) dlKey(dh string) string   { return s.prefix + "dl/" + dh }
func (s *Store) dataPrefix(uh string) string {
	return s.prefix + "data/" + uh + "/"
}
func (s *Store) chunkKey(uh string, off, nonce uint64) string {
	return s.dataPrefix(uh) + chunkName(off, nonce)
}
func chunkName(off, nonce uint64) string { return fmt.Sprintf("%016x-%016x", off, nonce) }

type record struct {
	download string
	blob     store.Blob
	// chunks are the committed chunks in order; each is the object
	// data/<h>/<offset>-<nonce>. The nonce is new for every attempt, so a
	// writer that loses the race for the record never overwrites the
	// winner's bytes.
	chunks []chunkRef
}

type chunkRef struct {
	nonce uint64
	size  uint32
}

// maxChunks bounds a record's size (12 bytes a chunk).
const maxChunks = 8192

func (r *record) marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.download)) })
	b.AddUint64(r.blob.Size)
	b.AddUint64(r.blob.Length)
	b.AddBytes(r.blob.Digest[:])
	if r.blob.Complete {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
	b.AddUint64(uint64(r.blob.Expires.UnixNano()))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.blob.HashState) })
	b.AddUint32(uint32(len(r.chunks)))
	for _, c := range r.chunks {
		b.AddUint64(c.nonce)
		b.AddUint32(c.size)
	}
	return b.BytesOrPanic()
}

func parseRecord(v []byte) (*record, error) {
	s := cryptobyte.String(v)
	r := new(record)
	var dl, hs cryptobyte.String
	var complete uint8
	var exp uint64
	var n uint32
	if !s.ReadUint8LengthPrefixed(&dl) || !s.ReadUint64(&r.blob.Size) || !s.ReadUint64(&r.blob.Length) ||
		!s.CopyBytes(r.blob.Digest[:]) || !s.ReadUint8(&complete) || !s.ReadUint64(&exp) ||
		!s.ReadUint16LengthPrefixed(&hs) || !s.ReadUint32(&n) || n > maxChunks {
		return nil, errors.New("s3blobs: corrupt blob record")
	}
	r.chunks = make([]chunkRef, n)
	for i := range r.chunks {
		if !s.ReadUint64(&r.chunks[i].nonce) || !s.ReadUint32(&r.chunks[i].size) {
			return nil, errors.New("s3blobs: corrupt blob record")
		}
	}
	if !s.Empty() {
		return nil, errors.New("s3blobs: corrupt blob record")
	}
	r.download = string(dl)
	r.blob.Complete = complete == 1
	r.blob.Expires = time.Unix(0, int64(exp))
	if len(hs) > 0 {
		r.blob.HashState = append([]byte(nil), hs...)
	}
	return r, nil
}

func (s *Store) readRecord(ctx context.Context, uh string) (*record, string, error) {
	v, etag, err := s.c.get(ctx, s.metaKey(uh), "")
	if errors.Is(err, errNoKey) {
		return nil, "", store.ErrNotFound
	}
	if err != nil {
		return nil, "", err
	}
	r, err := parseRecord(v)
	return r, etag, err
}

func (s *Store) CreateBlob(ctx context.Context, b store.Blob) error {
	uh, dh := hashName("tainik upload\x00", b.UploadToken), hashName("tainik download\x00", b.DownloadToken)
	if err := s.c.put(ctx, s.dlKey(dh), []byte(uh), "", "*"); err != nil {
		if errors.Is(err, errPrecondition) {
			return store.ErrExists
		}
		return err
	}
	r := &record{download: dh, blob: b}
	r.blob.UploadToken, r.blob.DownloadToken = relay.ID{}, relay.ID{}
	if err := s.c.put(ctx, s.metaKey(uh), r.marshal(), "", "*"); err != nil {
		if errors.Is(err, errPrecondition) {
			return store.ErrExists
		}
		return err
	}
	return nil
}

func (s *Store) BlobByUpload(ctx context.Context, upload relay.ID) (store.Blob, error) {
	r, _, err := s.readRecord(ctx, hashName("tainik upload\x00", upload))
	if err != nil {
		return store.Blob{}, err
	}
	return r.blob, nil
}

func (s *Store) uploadHash(ctx context.Context, download relay.ID) (string, error) {
	v, _, err := s.c.get(ctx, s.dlKey(hashName("tainik download\x00", download)), "")
	if errors.Is(err, errNoKey) {
		return "", store.ErrNotFound
	}
	return string(v), err
}

func (s *Store) BlobByDownload(ctx context.Context, download relay.ID) (store.Blob, error) {
	uh, err := s.uploadHash(ctx, download)
	if err != nil {
		return store.Blob{}, err
	}
	r, _, err := s.readRecord(ctx, uh)
	if err != nil {
		return store.Blob{}, err
	}
	return r.blob, nil
}

// PutChunk stores the chunk under a fresh name, then replaces the record
// if nobody else has since: when it returns nil both are stored.
func (s *Store) PutChunk(ctx context.Context, upload relay.ID, offset uint64, data, hashState []byte, complete bool) error {
	uh := hashName("tainik upload\x00", upload)
	r, etag, err := s.readRecord(ctx, uh)
	if err != nil {
		return err
	}
	if r.blob.Complete || offset != r.blob.Length {
		return &store.OffsetError{Length: r.blob.Length}
	}
	if len(r.chunks) >= maxChunks {
		return fmt.Errorf("s3blobs: a blob holds at most %d chunks", maxChunks)
	}
	var nb [8]byte
	rand.Read(nb[:])
	ref := chunkRef{nonce: binary.BigEndian.Uint64(nb[:]), size: uint32(len(data))}
	key := s.chunkKey(uh, offset, ref.nonce)
	if err := s.c.put(ctx, key, data, "", ""); err != nil {
		return err
	}
	r.blob.Length += uint64(len(data))
	r.blob.HashState = hashState
	r.blob.Complete = complete
	r.chunks = append(r.chunks, ref)
	if err := s.c.put(ctx, s.metaKey(uh), r.marshal(), etag, ""); err != nil {
		if errors.Is(err, errPrecondition) {
			// Another write moved the record on: this chunk is not
			// in it.
			s.c.delete(ctx, key) // best effort; sweepOrphans removes leftovers
			cur, _, err := s.readRecord(ctx, uh)
			if err != nil {
				return err
			}
			return &store.OffsetError{Length: cur.blob.Length}
		}
		// Any other failure (an error status, a lost answer) may
		// come after the record was stored: the chunk stays, or a
		// stored record would name a chunk that is gone. If the
		// record did take this chunk, the write succeeded.
		if cur, _, rerr := s.readRecord(ctx, uh); rerr == nil && len(cur.chunks) == len(r.chunks) && cur.chunks[len(cur.chunks)-1] == ref {
			return nil
		}
		return err
	}
	return nil
}

func (s *Store) ReadBlob(ctx context.Context, download relay.ID, offset uint64, limit int) ([]byte, error) {
	uh, err := s.uploadHash(ctx, download)
	if err != nil {
		return nil, err
	}
	r, _, err := s.readRecord(ctx, uh)
	if err != nil {
		return nil, err
	}
	if offset > r.blob.Length {
		return nil, &store.OffsetError{Length: r.blob.Length}
	}
	end := min(offset+uint64(limit), r.blob.Length)
	out := make([]byte, 0, end-offset)
	off := uint64(0)
	for _, c := range r.chunks {
		size := uint64(c.size)
		if off+size > offset && off < end {
			from := max(offset, off) - off
			to := min(end, off+size) - off
			b, _, err := s.c.get(ctx, s.chunkKey(uh, off, c.nonce), fmt.Sprintf("bytes=%d-%d", from, to-1))
			if err != nil {
				return nil, err
			}
			if uint64(len(b)) != to-from {
				return nil, fmt.Errorf("s3blobs: chunk at %d: got %d bytes, want %d", off, len(b), to-from)
			}
			out = append(out, b...)
		}
		off += size
	}
	if uint64(len(out)) != end-offset {
		return nil, fmt.Errorf("s3blobs: blob has %d of %d bytes from offset %d", len(out), end-offset, offset)
	}
	return out, nil
}

func (s *Store) DeleteBlob(ctx context.Context, upload relay.ID) error {
	return s.deleteBlob(ctx, hashName("tainik upload\x00", upload))
}

// deleteBlob removes the record first: once it is gone the blob does not
// exist, whatever else a failure leaves behind.
func (s *Store) deleteBlob(ctx context.Context, uh string) error {
	r, _, err := s.readRecord(ctx, uh)
	if err != nil {
		return err
	}
	if err := s.c.delete(ctx, s.metaKey(uh)); err != nil {
		return err
	}
	if err := s.c.delete(ctx, s.dlKey(r.download)); err != nil {
		return err
	}
	objs, err := s.c.list(ctx, s.dataPrefix(uh))
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := s.c.delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}

// Expire expires the wrapped store's messages and entries, then lists the
// records for expired blobs, and once an hour deletes orphaned objects
// (sweepOrphans). Buckets can also expire objects by a lifecycle rule;
// this does not rely on one.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	n, err := s.Store.Expire(ctx, now)
	if err != nil {
		return n, err
	}
	objs, err := s.c.list(ctx, s.prefix+"meta/")
	if err != nil {
		return n, err
	}
	live := map[string]*record{} // by upload hash
	unreadable := false
	for _, o := range objs {
		uh := strings.TrimPrefix(o.Key, s.prefix+"meta/")
		r, _, err := s.readRecord(ctx, uh)
		if err != nil {
			// Deleted meanwhile, or unreadable for now (a busy
			// bucket, a corrupt record): either way it is not
			// expired here, and an unreadable record may name
			// objects the sweep cannot tell from orphans.
			unreadable = unreadable || !errors.Is(err, store.ErrNotFound)
			continue
		}
		if !r.blob.Expires.Before(now) {
			live[uh] = r
			continue
		}
		switch err := s.deleteBlob(ctx, uh); {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			return n, err
		}
	}
	s.sweepMu.Lock()
	due := !unreadable && !now.Before(s.nextSweep)
	if due {
		s.nextSweep = now.Add(sweepEvery)
	}
	s.sweepMu.Unlock()
	if !due {
		return n, nil
	}
	m, err := s.sweepOrphans(ctx, now, live)
	return n + m, err
}

const (
	// sweepEvery is how often Expire lists the whole bucket for orphans.
	sweepEvery = time.Hour
	// orphanAge is how old an object must be before the sweep deletes
	// it: a younger one may belong to a CreateBlob or PutChunk in
	// progress, which writes its object before the record naming it.
	orphanAge = time.Hour
)

// sweepOrphans deletes objects that no record names and that are older
// than orphanAge: what a failure part-way through deleteBlob, CreateBlob
// or a lost PutChunk race left behind. live holds every record Expire
// kept, by upload hash (it sweeps only when it could read them all). Only
// keys this store writes are considered (dl/<hash>, data/<hash>/<chunk>),
// so other objects under the prefix, or another deployment under a
// longer prefix, are left alone.
func (s *Store) sweepOrphans(ctx context.Context, now time.Time, live map[string]*record) (int, error) {
	n := 0
	old := func(o object) bool {
		return !o.LastModified.IsZero() && now.Sub(o.LastModified) > orphanAge
	}
	remove := func(key string) error {
		if err := s.c.delete(ctx, key); err != nil {
			return err
		}
		n++
		return nil
	}
	named := map[string]bool{} // download hashes of live records
	for _, r := range live {
		if r != nil {
			named[r.download] = true
		}
	}
	dls, err := s.c.list(ctx, s.prefix+"dl/")
	if err != nil {
		return n, err
	}
	for _, o := range dls {
		dh := strings.TrimPrefix(o.Key, s.prefix+"dl/")
		if isHash(dh) && !named[dh] && old(o) {
			if err := remove(o.Key); err != nil {
				return n, err
			}
		}
	}
	data, err := s.c.list(ctx, s.prefix+"data/")
	if err != nil {
		return n, err
	}
	for _, o := range data {
		uh, name, ok := strings.Cut(strings.TrimPrefix(o.Key, s.prefix+"data/"), "/")
		if !ok || !isHash(uh) || !isChunkName(name) || !old(o) {
			continue
		}
		if r := live[uh]; r != nil && r.names(name) {
			continue
		}
		if err := remove(o.Key); err != nil {
			return n, err
		}
	}
	return n, nil
}

// isHash says whether s is a hashName: 64 lowercase hex digits.
func isHash(s string) bool { return len(s) == 64 && isLowerHex(s) }

// isChunkName says whether s is a chunkName: 16 hex digits, '-', 16 more.
func isChunkName(s string) bool {
	return len(s) == 33 && s[16] == '-' && isLowerHex(s[:16]) && isLowerHex(s[17:])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// names says whether the record lists the chunk object called name
// (offset-nonce, as chunkKey writes it).
func (r *record) names(name string) bool {
	off := uint64(0)
	for _, c := range r.chunks {
		if name == chunkName(off, c.nonce) {
			return true
		}
		off += uint64(c.size)
	}
	return false
}
