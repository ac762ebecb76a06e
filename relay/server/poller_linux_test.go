package server

import (
	"context"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPollerTokenWrap: after p.next wraps, a new park must not take the
// token of a connection that is still parked.
func TestPollerTokenWrap(t *testing.T) {
	var n atomic.Int64
	p, err := newPoller(&n)
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *conn {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := &conn{fd: fds[0]}
		c.ctx, c.cancel = context.WithCancel(context.Background())
		return c
	}
	a, b := mk(), mk()
	if !p.park(a) { // token 1
		t.Fatal("a not parked")
	}
	p.mu.Lock()
	p.next = ^uint32(0) // 2^32 parks later
	p.mu.Unlock()
	if !p.park(b) { // wraps to token 1 again
		t.Fatal("b not parked")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.parked) != 2 {
		t.Fatalf("a=%d b=%d: %d connections in parked map, want 2 (a is orphaned in epoll)", a.token, b.token, len(p.parked))
	}
}
