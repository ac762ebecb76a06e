package server

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller watches the sockets of idle connections with one epoll instance
// (epoll(7)), so that an idle connection needs no goroutine blocked in a
// read. Each parked socket is registered one-shot: the first sign of
// input (or of the peer closing) unparks it and starts its read loop.
//
// Exactly one party reads a connection at a time: its read loop, or the
// poller while it is parked. park, unpark and the wake-up hand that role
// over under mu.
type poller struct {
	epfd    int           // -1 if epoll is unavailable: connections then stay unparked
	stop    int           // eventfd that tells run to return
	stopped chan struct{} // closed when run has returned
	count   *atomic.Int64 // parked connections, for the metrics

	closeMu sync.Mutex // serialises close

	mu     sync.Mutex
	closed bool // the epoll descriptor is closed
	next   uint32
	parked map[uint32]*conn
}

func newPoller(count *atomic.Int64) (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return &poller{epfd: -1}, err
	}
	// An eventfd under token 0 wakes run to stop it: closing the epoll
	// descriptor alone does not end an epoll_wait in progress.
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return &poller{epfd: -1}, err
	}
	if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, stop, &unix.EpollEvent{Events: unix.EPOLLIN, Pad: 0}); err != nil {
		unix.Close(fd)
		unix.Close(stop)
		return &poller{epfd: -1}, err
	}
	p := &poller{epfd: fd, stop: stop, count: count, parked: make(map[uint32]*conn), stopped: make(chan struct{})}
	go p.run()
	return p, nil
}

// park hands c's socket to the poller. It returns true if the caller's
// read loop must end (someone else now owns reading), false if the
// caller keeps reading.
func (p *poller) park(c *conn) bool {
	if p.epfd < 0 || c.fd < 0 {
		return false
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	// Token 0 is the stop event's; skip tokens still in use after the
	// counter wraps.
	for {
		p.next++
		if p.next != 0 && p.parked[p.next] == nil {
			break
		}
	}
	c.token = p.next
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Pad: int32(c.token)}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev)
	if err == nil {
		p.parked[c.token] = c
		p.count.Add(1)
	}
	p.mu.Unlock()
	if err != nil {
		return false
	}
	if c.ctx.Err() != nil {
		// Closed while parking: if the closer did not take it over,
		// keep reading so that the read loop cleans up.
		return !p.unpark(c)
	}
	return true
}

// unpark takes c back from the poller; false if it was not parked.
func (p *poller) unpark(c *conn) bool {
	if p.epfd < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.parked[c.token] != c {
		return false
	}
	p.remove(c)
	return true
}

// remove takes c's socket out of the epoll set. Called with mu held.
func (p *poller) remove(c *conn) {
	delete(p.parked, c.token)
	p.count.Add(-1)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

// close stops the poller and waits for it; parked connections stay as
// they are (Shutdown closes them first).
func (p *poller) close() {
	if p.epfd < 0 {
		return
	}
	p.closeMu.Lock() // one close at a time: a second finds closed set
	defer p.closeMu.Unlock()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return // a second Shutdown: the descriptors may be others' by now
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(p.stop, one[:])
	<-p.stopped
	p.mu.Lock()
	p.closed = true
	unix.Close(p.epfd)
	unix.Close(p.stop)
	p.mu.Unlock()
}

func (p *poller) run() {
	defer close(p.stopped)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			tok := uint32(ev.Pad)
			if tok == 0 {
				p.mu.Unlock()
				return
			}
			c := p.parked[tok]
			if c == nil {
				continue // taken back, or closed
			}
			p.remove(c)
			go c.readLoop()
		}
		p.mu.Unlock()
	}
}

// socketFD returns the file descriptor under a (TLS) connection, or -1.
func socketFD(nc net.Conn) int {
	type netConner interface{ NetConn() net.Conn }
	for {
		u, ok := nc.(netConner)
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(s uintptr) { fd = int(s) })
	return fd
}
