package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/ws"
)

// conn is one client connection. A read loop decodes frames and hands each
// request to its own goroutine (at most MaxInFlight), so requests pipeline
// and concurrent writes share a flush. Frames to the client go through a
// bounded queue; whichever goroutine finds no write in progress writes
// all waiting frames at once, with a deadline, so a client that does not
// read is closed instead of holding memory or slowing others.
//
// When a connection has been quiet for IdleAfter, its read loop ends and
// the server's poller watches the socket instead: an idle connection then
// holds no goroutine and no buffer.
type conn struct {
	s      *Server
	ws     *ws.Conn
	fd     int // the socket, for the poller; -1 if unknown
	nonce  [relay.NonceSize]byte
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // requests in flight
	slots  chan struct{} // frames queued or being written

	wmu     sync.Mutex
	pending [][]byte // frames waiting to be written
	writing bool     // a goroutine is in flush

	// token names the connection in the poller while parked; guarded
	// by the poller's lock.
	token uint32

	// mu guards the subscription maps and recipients (nil until the
	// first subscription). Lock order: see hub.
	mu        sync.Mutex
	queueSubs map[relay.ID]*queueSub
	logSubs   map[relay.ID]*logSub
	// recipients remembers the queues this connection subscribed to,
	// by recipient id (Key, RecipientKey and Contact only).
	recipients map[relay.ID]store.Queue
}

func newConn(s *Server, w *ws.Conn) *conn {
	c := &conn{
		s:     s,
		ws:    w,
		fd:    socketFD(w.NetConn()),
		sem:   make(chan struct{}, s.cfg.MaxInFlight),
		slots: make(chan struct{}, s.cfg.OutboundFrames),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	rand.Read(c.nonce[:])
	return c
}

func (c *conn) serve() {
	c.send(relay.Encode(0, &relay.Hello{Nonce: c.nonce}))
	c.readLoop()
}

// readLoop reads requests until the connection fails or goes quiet; a
// quiet connection is handed to the poller, which starts readLoop again
// when the client sends.
func (c *conn) readLoop() {
	for {
		idle, err := c.ws.WaitIdle(c.s.cfg.IdleAfter)
		if err != nil {
			c.cleanup()
			return
		}
		if idle {
			if c.s.poller.park(c) {
				return
			}
			continue
		}
		// A started frame must be finished within ReadTimeout, so a
		// client cannot hold a goroutine and a buffer by trickling.
		c.ws.NetConn().SetReadDeadline(time.Now().Add(c.s.cfg.ReadTimeout))
		frame, err := c.ws.Next()
		if frame == nil && err == nil {
			continue // a ping or pong between messages
		}
		if err != nil {
			var pe *ws.ProtocolError
			if errors.As(err, &pe) {
				c.ws.Close(pe.Code, pe.Message)
			}
			c.cleanup()
			return
		}
		if !c.request(frame) {
			c.cleanup()
			return
		}
	}
}

// request starts one request; false if the connection must close.
func (c *conn) request(frame []byte) bool {
	c.s.metrics.requests.Add(1)
	// A frame of a type that is not a request (a response, a push) is
	// answered with unknown_command whatever its body, as for an
	// unknown type: its body need not parse as that type.
	if len(frame) >= 6 && frame[0] == relay.Version && !isRequest(relay.Type(frame[1])) {
		c.sendError(binary.BigEndian.Uint32(frame[2:6]), relay.Errorf(relay.CodeUnknownCommand, "not a request"))
		return true
	}
	id, m, err := relay.Decode(frame)
	if err != nil {
		var re *relay.Error
		errors.As(err, &re)
		if re.Code == relay.CodeUnknownCommand {
			c.sendError(id, re)
			return true
		}
		// The stream can no longer be trusted: answer directly, then
		// close.
		c.s.metrics.countError(re.Code)
		c.ws.WriteMessages(time.Now().Add(time.Second), relay.Encode(id, relay.ErrorFrameFor(re)))
		c.ws.Close(ws.StatusProtocolError, re.Message)
		return false
	}
	if !isRequest(m.Type()) {
		c.sendError(id, relay.Errorf(relay.CodeUnknownCommand, "not a request"))
		return true
	}
	select {
	case c.sem <- struct{}{}:
	default:
		c.sendError(id, relay.Errorf(relay.CodeTooManyRequests, "too many requests in flight"))
		return true
	}
	if !c.s.startHandler() {
		<-c.sem
		c.sendError(id, relay.Errorf(relay.CodeShuttingDown, "relay is shutting down"))
		return true
	}
	go func() {
		defer func() { <-c.sem; c.s.handlers.Done() }()
		resp, err := c.handle(m)
		if err != nil {
			c.sendError(id, errorFor(err))
			return
		}
		c.send(relay.Encode(id, resp))
	}()
	return true
}

// startHandler registers a request with the drain wait group unless the
// server is draining.
func (s *Server) startHandler() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.handlers.Add(1)
	return true
}

func isRequest(t relay.Type) bool { return t >= relay.TypeQueueCreate && t < relay.TypeOK }

func (c *conn) sendError(id uint32, err error) {
	if c.ctx.Err() != nil {
		return // the connection is gone; nobody to answer
	}
	f := relay.ErrorFrameFor(err)
	if f.Code == relay.CodeInternal {
		// Not the client's fault: log it (no identifiers, no payload).
		c.s.log.Error("request failed", "err", err)
	}
	c.s.metrics.countError(f.Code)
	c.send(relay.Encode(id, f))
}

// send queues a frame and, unless another goroutine is writing to this
// connection already, writes it and everything queued behind it. The
// goroutines that write are the ones that produced the frames for this
// connection (its requests, its subscriptions), so a client that reads
// slowly holds up only its own work. If the client has not made room
// within WriteTimeout, the connection is closed.
func (c *conn) send(frame []byte) bool {
	if !c.reserve() {
		return false
	}
	if c.enqueue(frame) {
		return c.flush()
	}
	return true
}

// reserve takes a place in the outbound queue, waiting up to
// WriteTimeout; false if the connection is closed (or was closed for
// being slow). A reserved place is used by enqueue or given back with
// unreserve.
func (c *conn) reserve() bool {
	select {
	case c.slots <- struct{}{}:
		return true
	case <-c.ctx.Done():
		return false
	default:
	}
	t := time.NewTimer(c.s.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return true
	case <-c.ctx.Done():
		return false
	case <-t.C:
		c.s.log.Debug("closing slow client")
		c.s.metrics.slowClosed.Add(1)
		c.close()
		return false
	}
}

func (c *conn) unreserve() { <-c.slots }

// enqueue appends a frame for which a place was reserved. It returns
// true if the caller must now flush (no write is in progress); it never
// blocks, so it may be called under other locks.
func (c *conn) enqueue(frame []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pending = append(c.pending, frame)
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// flush writes every queued frame in one go, until none is left. Only
// the goroutine that set c.writing calls it.
func (c *conn) flush() bool {
	var batch [][]byte
	for {
		c.wmu.Lock()
		if len(c.pending) == 0 {
			c.writing = false
			c.pending = nil
			c.wmu.Unlock()
			return true
		}
		batch, c.pending = c.pending, batch[:0]
		c.wmu.Unlock()
		err := c.ws.WriteMessages(time.Now().Add(c.s.cfg.WriteTimeout), batch...)
		for range batch {
			<-c.slots
		}
		clear(batch)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.s.log.Debug("closing slow client")
				c.s.metrics.slowClosed.Add(1)
			}
			c.close()
			c.wmu.Lock()
			c.writing = false
			for range c.pending {
				<-c.slots
			}
			c.pending = nil
			c.wmu.Unlock()
			return false
		}
	}
}

// close closes the connection from the relay's side. A parked connection
// has no read loop to notice, so one is started to clean up.
func (c *conn) close() { c.closeWith(0, "") }

// closeWith closes the connection with a close frame carrying code and
// reason (none if code is 0). A parked socket leaves the poller before it
// is closed, so its descriptor number cannot be reused while registered.
func (c *conn) closeWith(code int, reason string) {
	c.cancel()
	parked := c.s.poller.unpark(c)
	if code != 0 {
		c.ws.Close(code, reason)
	} else {
		c.ws.CloseNow()
	}
	if parked {
		go c.readLoop()
	}
}

func (c *conn) cleanup() {
	c.cancel()
	c.ws.CloseNow()
	c.s.hub.dropConn(c)
	c.s.mu.Lock()
	_, ok := c.s.conns[c]
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	if ok {
		c.s.metrics.connections.Add(-1)
		c.s.log.Debug("connection closed")
	}
}

func (c *conn) handle(m relay.Message) (relay.Message, error) {
	ctx := c.ctx
	switch m := m.(type) {
	case *relay.QueueCreate:
		return c.queueCreate(ctx, m)
	case *relay.QueueLock:
		return c.queueLock(ctx, m)
	case *relay.QueueSend:
		return c.queueSend(ctx, m)
	case *relay.QueueSubscribe:
		return c.queueSubscribe(ctx, m)
	case *relay.QueueReceive:
		return c.queueReceive(ctx, m)
	case *relay.QueueAck:
		return c.queueAck(ctx, m)
	case *relay.QueueDelete:
		return c.queueDelete(ctx, m)
	case *relay.LogCreate:
		return c.logCreate(ctx, m)
	case *relay.LogAppend:
		return c.logAppend(ctx, m)
	case *relay.LogRead:
		return c.logRead(ctx, m)
	case *relay.LogSubscribe:
		return c.logSubscribe(ctx, m)
	case *relay.LogUnsubscribe:
		c.s.hub.unsubscribeLog(c, m.LogID)
		return &relay.OK{}, nil
	case *relay.BlobCreate:
		return c.blobCreate(ctx, m)
	case *relay.BlobPut:
		return c.blobPut(ctx, m)
	case *relay.BlobStat:
		return c.blobStat(ctx, m)
	case *relay.BlobGet:
		return c.blobGet(ctx, m)
	}
	return nil, relay.Errorf(relay.CodeUnknownCommand, "unknown command")
}
