//go:build !linux

package server

import (
	"errors"
	"net"
	"sync/atomic"
)

// poller is epoll-only; elsewhere idle connections keep their read loop.
type poller struct{}

func newPoller(*atomic.Int64) (*poller, error) {
	return &poller{}, errors.New("relay: idle connections are parked only on Linux")
}

func (p *poller) park(c *conn) bool   { return false }
func (p *poller) unpark(c *conn) bool { return false }
func (p *poller) close()              {}

func socketFD(nc net.Conn) int { return -1 }
