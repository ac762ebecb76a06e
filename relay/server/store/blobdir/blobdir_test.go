package blobdir_test

import (
	"testing"

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
