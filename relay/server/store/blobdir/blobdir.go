// Package blobdir keeps the relay's blobs in a directory instead of the
// database: a Store wraps another store.Store and takes over its blob
// methods. Several relay nodes share blobs by sharing the directory (NFS,
// CephFS, a cloud file share); the queues and logs stay in the wrapped
// store.
//
// Each blob is two files named by a hash of its upload capability: the
// bytes (<hash>.data), appended in place and fsynced, and a small record
// (<hash>.meta: length, SHA-256 state, expiry), replaced atomically by
// rename after the bytes are on disk. The record's length is the truth: an
// upload interrupted between the two resumes from it and overwrites what
// lies beyond. A third file, dl/<download hash>, maps the download
// capability to the upload hash. Capabilities themselves are never
// written.
package blobdir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// Store is a store.Store whose blobs live in a directory. It is safe for
// concurrent use, and for several processes sharing the directory:
// changes to one blob are serialised by an flock(2) on its record.
type Store struct {
	store.Store
	dir string

	mu    sync.Mutex // guards locks
	locks map[string]*blobLock
}

// blobLock queues this process's writers of one blob before they take
// its flock, so that they wait on a mutex rather than each in a system
// call holding a thread. Writers of different blobs do not wait for
// each other.
type blobLock struct {
	mu    sync.Mutex
	users int // writers holding or waiting for mu; guarded by Store.mu
}

var _ store.Store = (*Store)(nil)

// New returns meta with its blob methods replaced by files in dir, which
// it creates if needed. Closing the Store closes meta.
func New(meta store.Store, dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "dl"), 0o700); err != nil {
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	return &Store{Store: meta, dir: dir, locks: map[string]*blobLock{}}, nil
}

// Unwrap returns the store that holds everything but blobs.
func (s *Store) Unwrap() store.Store { return s.Store }

func hashName(label string, id relay.ID) string {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write(id[:])
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Store) metaPath(uh string) string { return filepath.Join(s.dir, uh+".meta") }
func (s *Store) dataPath(uh string) string { return filepath.Join(s.dir, uh+".data") }
func (s *Store) dlPath(dh string) string   { return filepath.Join(s.dir, "dl", dh) }

type record struct {
	download string
	blob     store.Blob
}

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
	return b.BytesOrPanic()
}

func parseRecord(v []byte) (*record, error) {
	s := cryptobyte.String(v)
	r := new(record)
	var dl, hs cryptobyte.String
	var complete uint8
	var exp uint64
	if !s.ReadUint8LengthPrefixed(&dl) || !s.ReadUint64(&r.blob.Size) || !s.ReadUint64(&r.blob.Length) ||
		!s.CopyBytes(r.blob.Digest[:]) || !s.ReadUint8(&complete) || !s.ReadUint64(&exp) ||
		!s.ReadUint16LengthPrefixed(&hs) || !s.Empty() {
		return nil, errors.New("blobdir: corrupt blob record")
	}
	r.download = string(dl)
	r.blob.Complete = complete == 1
	r.blob.Expires = time.Unix(0, int64(exp))
	if len(hs) > 0 {
		r.blob.HashState = append([]byte(nil), hs...)
	}
	return r, nil
}

func (s *Store) readRecord(uh string) (*record, error) {
	v, err := os.ReadFile(s.metaPath(uh))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	return parseRecord(v)
}

// writeFile replaces path with data atomically and durably: a temporary
// file, fsync, rename, fsync of the directory.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lock takes this process's lock on the blob, then an exclusive flock on
// the blob's lock file, shared with other processes using the directory.
func (s *Store) lock(uh string) (unlock func(), err error) {
	s.mu.Lock()
	l := s.locks[uh]
	if l == nil {
		l = new(blobLock)
		s.locks[uh] = l
	}
	l.users++
	s.mu.Unlock()
	l.mu.Lock()
	release := func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.locks, uh)
		}
		s.mu.Unlock()
	}
	f, err := os.OpenFile(filepath.Join(s.dir, uh+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		release()
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		release()
		return nil, fmt.Errorf("blobdir: lock: %w", err)
	}
	return func() { f.Close(); release() }, nil
}

func (s *Store) CreateBlob(ctx context.Context, b store.Blob) error {
	uh, dh := hashName("tainik upload\x00", b.UploadToken), hashName("tainik download\x00", b.DownloadToken)
	unlock, err := s.lock(uh)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(s.metaPath(uh)); err == nil {
		return store.ErrExists
	}
	if _, err := os.Stat(s.dlPath(dh)); err == nil {
		return store.ErrExists
	}
	f, err := os.OpenFile(s.dataPath(uh), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("blobdir: %w", err)
	}
	f.Close()
	if err := writeFile(s.dlPath(dh), []byte(uh)); err != nil {
		return fmt.Errorf("blobdir: %w", err)
	}
	r := &record{download: dh, blob: b}
	r.blob.UploadToken, r.blob.DownloadToken = relay.ID{}, relay.ID{}
	if err := writeFile(s.metaPath(uh), r.marshal()); err != nil {
		return fmt.Errorf("blobdir: %w", err)
	}
	return nil
}

func (s *Store) BlobByUpload(ctx context.Context, upload relay.ID) (store.Blob, error) {
	r, err := s.readRecord(hashName("tainik upload\x00", upload))
	if err != nil {
		return store.Blob{}, err
	}
	return r.blob, nil
}

func (s *Store) uploadHash(download relay.ID) (string, error) {
	v, err := os.ReadFile(s.dlPath(hashName("tainik download\x00", download)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("blobdir: %w", err)
	}
	return string(v), nil
}

func (s *Store) BlobByDownload(ctx context.Context, download relay.ID) (store.Blob, error) {
	uh, err := s.uploadHash(download)
	if err != nil {
		return store.Blob{}, err
	}
	r, err := s.readRecord(uh)
	if err != nil {
		return store.Blob{}, err
	}
	return r.blob, nil
}

// PutChunk writes data at offset and fsyncs it, then records the new
// length. When it returns nil the chunk is on disk.
func (s *Store) PutChunk(ctx context.Context, upload relay.ID, offset uint64, data, hashState []byte, complete bool) error {
	uh := hashName("tainik upload\x00", upload)
	unlock, err := s.lock(uh)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := s.readRecord(uh)
	if err != nil {
		return err
	}
	if r.blob.Complete || offset != r.blob.Length {
		return &store.OffsetError{Length: r.blob.Length}
	}
	f, err := os.OpenFile(s.dataPath(uh), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("blobdir: %w", err)
	}
	_, err = f.WriteAt(data, int64(offset))
	if err == nil {
		// Drop bytes an interrupted earlier attempt left past the end.
		err = f.Truncate(int64(offset) + int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blobdir: writing chunk: %w", err)
	}
	r.blob.Length += uint64(len(data))
	r.blob.HashState = hashState
	r.blob.Complete = complete
	if err := writeFile(s.metaPath(uh), r.marshal()); err != nil {
		return fmt.Errorf("blobdir: %w", err)
	}
	return nil
}

func (s *Store) ReadBlob(ctx context.Context, download relay.ID, offset uint64, max int) ([]byte, error) {
	uh, err := s.uploadHash(download)
	if err != nil {
		return nil, err
	}
	r, err := s.readRecord(uh)
	if err != nil {
		return nil, err
	}
	if offset > r.blob.Length {
		return nil, &store.OffsetError{Length: r.blob.Length}
	}
	n := min(uint64(max), r.blob.Length-offset)
	f, err := os.Open(s.dataPath(uh))
	if err != nil {
		return nil, fmt.Errorf("blobdir: %w", err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, int64(offset)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, fmt.Errorf("blobdir: reading: %w", err)
	}
	return buf, nil
}

func (s *Store) DeleteBlob(ctx context.Context, upload relay.ID) error {
	return s.deleteBlob(hashName("tainik upload\x00", upload))
}

// deleteBlob removes the record first: once it is gone the blob does not
// exist, whatever else a crash leaves behind.
func (s *Store) deleteBlob(uh string) error {
	unlock, err := s.lock(uh)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := s.readRecord(uh)
	if err != nil {
		return err
	}
	if err := os.Remove(s.metaPath(uh)); err != nil {
		return fmt.Errorf("blobdir: %w", err)
	}
	os.Remove(s.dlPath(r.download))
	os.Remove(s.dataPath(uh))
	os.Remove(filepath.Join(s.dir, uh+".lock"))
	return nil
}

// Expire expires the wrapped store's messages and entries, then scans the
// directory for expired blobs.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	n, err := s.Store.Expire(ctx, now)
	if err != nil {
		return n, err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return n, fmt.Errorf("blobdir: %w", err)
	}
	for _, e := range ents {
		uh, ok := strings.CutSuffix(e.Name(), ".meta")
		if !ok {
			continue
		}
		r, err := s.readRecord(uh)
		if err != nil || !r.blob.Expires.Before(now) {
			continue
		}
		switch err := s.deleteBlob(uh); {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			return n, err
		}
	}
	return n, nil
}
