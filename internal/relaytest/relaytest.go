// Package relaytest starts in-process relays for tests in other packages.
package relaytest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tainik/tainik/relay/server"
)

// Start starts a relay with cfg (in a temporary data directory unless cfg
// names one) on a loopback port, stops it when the test ends, and returns
// it with its address.
func Start(t testing.TB, cfg server.Config) (*server.Server, string) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	srv, err := server.New(cfg)
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
