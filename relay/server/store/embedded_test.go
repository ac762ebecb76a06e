package store_test

import (
	"testing"

	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

// TestEmbedded runs the conformance suite on each embedded engine.
func TestEmbedded(t *testing.T) {
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
				dir := t.TempDir()
				s, err := store.OpenEmbedded(engine, dir)
				if err != nil {
					t.Fatal(err)
				}
				cur := s
				t.Cleanup(func() { cur.Close() })
				return s, func() store.Store {
					if err := cur.Close(); err != nil {
						t.Fatal(err)
					}
					next, err := store.OpenEmbedded(engine, dir)
					if err != nil {
						t.Fatal(err)
					}
					cur = next
					return next
				}
			})
		})
	}
}
