package store_test

import (
	"testing"

	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

func TestBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dir := t.TempDir()
		s, err := store.OpenBolt(dir)
		if err != nil {
			t.Fatal(err)
		}
		cur := s
		t.Cleanup(func() { cur.Close() })
		return s, func() store.Store {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
			next, err := store.OpenBolt(dir)
			if err != nil {
				t.Fatal(err)
			}
			cur = next
			return next
		}
	})
}
