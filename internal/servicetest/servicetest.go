// Package servicetest gives tests their own slice of the PostgreSQL and
// NATS servers a scale-out relay runs on: a fresh PostgreSQL schema and a
// fresh NATS subject prefix per call, so parallel runs and reruns never
// share state.
//
// The servers are found through TAINIK_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable) and
// TAINIK_TEST_NATS (default nats://127.0.0.1:4222). A test whose server is
// unreachable is skipped, or fails when TAINIK_REQUIRE_SERVICES=1 (CI).
package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
)

const (
	defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultNATS     = "nats://127.0.0.1:4222"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// unavailable skips t, or fails it when the services are required.
func unavailable(t testing.TB, service, envVar, addr string, err error) {
	t.Helper()
	if os.Getenv("TAINIK_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s at %s is required (TAINIK_REQUIRE_SERVICES=1) but unreachable: %v; set %s to its URL", service, addr, err, envVar)
	}
	t.Skipf("%s at %s is unreachable (%v); set %s to its URL, or TAINIK_REQUIRE_SERVICES=1 to fail instead", service, addr, err, envVar)
}

func randomName(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Postgres creates an empty schema, drops it when the test ends, and
// returns a connection URL whose search_path is that schema.
func Postgres(t testing.TB) string {
	t.Helper()
	base := env("TAINIK_TEST_POSTGRES", defaultPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, "PostgreSQL", "TAINIK_TEST_POSTGRES", base, err)
	}
	defer conn.Close(context.Background())
	schema := randomName("tainik_test_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("servicetest: creating schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("servicetest: dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("servicetest: dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("servicetest: TAINIK_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// NATS checks that the NATS server answers and returns its URL and a
// fresh subject prefix.
func NATS(t testing.TB) (url, prefix string) {
	t.Helper()
	url = env("TAINIK_TEST_NATS", defaultNATS)
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		unavailable(t, "NATS", "TAINIK_TEST_NATS", url, err)
	}
	nc.Close()
	return url, randomName("tainik_test_")
}
