package server

import (
	"context"
	"net"
	"testing"
	"time"
)

// StartForTest starts a relay with cfg (in a temporary data directory
// unless cfg names one) on a loopback port, stops it when the test ends,
// and returns it with its address. It is exported for the package's
// external tests.
func StartForTest(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, srv.Address(ln.Addr()).String()
}
