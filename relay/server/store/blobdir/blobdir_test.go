package blobdir_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/blobdir"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

// TestBlobDir runs the store suite on the embedded store with its blobs
// in a directory.
func TestBlobDir(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dir, blobs := t.TempDir(), t.TempDir()
		open := func() store.Store {
			meta, err := store.OpenBolt(dir)
			if err != nil {
				t.Fatal(err)
			}
			s, err := blobdir.New(meta, blobs)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		cur := open()
		t.Cleanup(func() { cur.Close() })
		return cur, func() store.Store {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
			cur = open()
			return cur
		}
	})
}

// TestOtherBlobNotBlocked: while another process holds one blob's lock
// (a writer on another node), writes to other blobs go on.
func TestOtherBlobNotBlocked(t *testing.T) {
	meta, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := blobdir.New(meta, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	a, b := relay.ID{1}, relay.ID{3}
	exp := time.Now().Add(time.Hour)
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: a, DownloadToken: relay.ID{2}, Size: 4, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	locks, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
	if len(locks) != 1 {
		t.Fatalf("lock files %q, want one", locks)
	}
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: b, DownloadToken: relay.ID{4}, Size: 4, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	// Another process's writer holds a's flock; a writer of a here waits.
	f, err := os.OpenFile(locks[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- s.PutChunk(ctx, a, 0, []byte("aaaa"), nil, true) }()
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- s.PutChunk(ctx, b, 0, []byte("bbbb"), nil, true) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write to one blob waited for another process's lock on another blob")
	}
	select {
	case err := <-waiting:
		t.Fatalf("the write to the locked blob did not wait: %v", err)
	default:
	}
	f.Close() // releases the flock
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
}
