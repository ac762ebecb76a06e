package server

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tainik/tainik/relay"
)

// conn is one client connection. A read loop decodes frames and hands each
// request to its own goroutine (at most MaxInFlight), so requests pipeline
// and concurrent writes share a flush; a write loop sends frames from a
// bounded buffer with a deadline, so a client that does not read is closed
// instead of holding memory or slowing others.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	nonce  [relay.NonceSize]byte
	out    chan []byte
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	// writing is set while a writeLoop goroutine runs.
	writing atomic.Bool

	// mu guards the subscription maps. Lock order: hub.mu before conn.mu.
	mu        sync.Mutex
	queueSubs map[relay.ID]*queueSub
	logSubs   map[relay.ID]*logSub
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	c := &conn{
		s:         s,
		ws:        ws,
		out:       make(chan []byte, s.cfg.OutboundFrames),
		sem:       make(chan struct{}, s.cfg.MaxInFlight),
		queueSubs: make(map[relay.ID]*queueSub),
		logSubs:   make(map[relay.ID]*logSub),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	rand.Read(c.nonce[:])
	return c
}

func (c *conn) serve() {
	defer c.cleanup()
	c.send(relay.Encode(0, &relay.Hello{Nonce: c.nonce}))
	for {
		typ, frame, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			c.ws.Close(websocket.StatusUnsupportedData, "binary frames only")
			return
		}
		c.s.metrics.requests.Add(1)
		id, m, err := relay.Decode(frame)
		if err != nil {
			var re *relay.Error
			errors.As(err, &re)
			if re.Code == relay.CodeUnknownCommand {
				c.sendError(id, re)
				continue
			}
			// The stream can no longer be trusted: answer directly, then
			// close.
			c.s.metrics.countError(re.Code)
			ctx, cancel := context.WithTimeout(c.ctx, time.Second)
			c.ws.Write(ctx, websocket.MessageBinary, relay.Encode(id, relay.ErrorFrameFor(re)))
			cancel()
			c.ws.Close(websocket.StatusProtocolError, re.Message)
			return
		}
		if !isRequest(m.Type()) {
			c.sendError(id, relay.Errorf(relay.CodeUnknownCommand, "not a request"))
			continue
		}
		select {
		case c.sem <- struct{}{}:
		default:
			c.sendError(id, relay.Errorf(relay.CodeTooManyRequests, "too many requests in flight"))
			continue
		}
		if !c.s.startHandler() {
			<-c.sem
			c.sendError(id, relay.Errorf(relay.CodeShuttingDown, "relay is shutting down"))
			continue
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
	}
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

// send queues a frame. If the client has not made room within
// WriteTimeout, the connection is closed.
func (c *conn) send(frame []byte) bool {
	select {
	case c.out <- frame:
		c.startWriter()
		return true
	case <-c.ctx.Done():
		return false
	default:
	}
	t := time.NewTimer(c.s.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case c.out <- frame:
		c.startWriter()
		return true
	case <-c.ctx.Done():
		return false
	case <-t.C:
		c.s.log.Debug("closing slow client")
		c.s.metrics.slowClosed.Add(1)
		c.ws.CloseNow()
		c.cancel()
		return false
	}
}

// startWriter makes sure a writer goroutine is draining c.out. The writer
// exits when the buffer is empty, so an idle connection holds no writer
// goroutine (and no stack for it).
func (c *conn) startWriter() {
	if c.writing.CompareAndSwap(false, true) {
		go c.writeLoop()
	}
}

func (c *conn) writeLoop() {
	for {
		var f []byte
		select {
		case <-c.ctx.Done():
			return
		case f = <-c.out:
		default:
			c.writing.Store(false)
			// A frame queued between the empty check and the Store
			// would otherwise wait for the next send.
			if len(c.out) == 0 || !c.writing.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.WriteTimeout)
		err := c.ws.Write(ctx, websocket.MessageBinary, f)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				c.s.log.Debug("closing slow client")
				c.s.metrics.slowClosed.Add(1)
			}
			c.ws.CloseNow()
			c.cancel()
			return
		}
	}
}

func (c *conn) cleanup() {
	c.cancel()
	c.ws.CloseNow()
	c.s.hub.dropConn(c)
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
