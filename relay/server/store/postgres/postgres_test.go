package postgres_test

import (
	"context"
	"testing"

	"github.com/tainik/tainik/internal/servicetest"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/postgres"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		url := servicetest.Postgres(t)
		open := func() *postgres.Store {
			s, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		cur := open()
		t.Cleanup(func() { cur.Close() })
		return cur, func() store.Store {
			cur.Close()
			cur = open()
			return cur
		}
	})
}

// TestMigrateConcurrently opens the store from several goroutines at once,
// as nodes starting together do: each migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	url := servicetest.Postgres(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
