// Package client is a Go client for the Tainik relay protocol (package
// relay). It pins the relay's key fingerprint, pipelines requests over one
// WebSocket, and reconnects with backoff, renewing its subscriptions.
package client

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/ws"
)

// ErrDisconnected is returned for requests in flight when the connection
// drops; the request may or may not have been carried out. Sends and acks
// are idempotent by message id, so callers retry.
var ErrDisconnected = errors.New("relay: disconnected")

// ErrNoAnswer is returned for a request the relay did not answer within
// Options.AnswerTimeout.
var ErrNoAnswer = errors.New("relay: no answer from the relay in time")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("relay: client closed")

// Options configure a Client.
type Options struct {
	// Header is sent with the WebSocket handshake (for example a
	// User-Agent). The relay neither stores nor logs it.
	Header http.Header
	// DialContext dials TCP; nil uses a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxBackoff caps the reconnect delay; default 10 s.
	MaxBackoff time.Duration
	// KeepAlive is how long the connection may be quiet before the
	// client pings the relay; if nothing at all arrives within another
	// KeepAlive, the connection is taken for dead (a network change, a
	// NAT that forgot it) and replaced. Default 60 s; negative turns
	// the pings off.
	KeepAlive time.Duration
	// AnswerTimeout bounds the wait for a request's answer once the
	// request is sent; past it the request fails with ErrNoAnswer (a
	// relay that accepts requests and never answers would otherwise hold
	// the caller until its context ends). Zero leaves it to the context.
	AnswerTimeout time.Duration
	// PushBuffer is the capacity of the Pushes channel; default 1024.
	// Pushes that do not fit wait inside the client (up to
	// MaxPushBacklog bytes), so a consumer may call the client's
	// methods, Ack for one, from the goroutine that drains Pushes.
	PushBuffer int
}

// MaxPushBacklog bounds the bytes of pushes waiting inside a client for
// room in its Pushes channel. Past it the client drops the connection
// (requests in flight get ErrDisconnected) and connects again, with
// growing delays while the backlog stays full.
const MaxPushBacklog = 64 << 20

// Client is a connection to one relay. It is safe for concurrent use.
type Client struct {
	addr   relay.Address
	opts   Options
	tls    *tls.Config
	pushes chan relay.Message
	// backlog holds pushes that found Pushes full, for deliver; the
	// read loop adds to it, and sends straight to Pushes only while it
	// is empty, so pushes keep their order.
	backlogMu    sync.Mutex
	backlogCond  *sync.Cond // items added, removed, or the client closed
	backlog      []pushed
	backlogBytes int
	lost         chan *SubscriptionError
	ctx          context.Context
	cancel       context.CancelFunc
	done         chan struct{}

	mu        sync.Mutex
	ws        *ws.Conn // nil while disconnected
	nonce     [relay.NonceSize]byte
	connected chan struct{} // closed when ws is set
	nextID    uint32
	pending   map[uint32]chan result
	queueSubs map[relay.ID]Queue
	logSubs   map[relay.ID]*logSub
	wr        *frameWriter // ws's writer
}

// frameWriter writes one connection's requests. The request that finds
// no write in progress writes every waiting frame at once, so concurrent
// requests share TLS records and system calls.
type frameWriter struct {
	w      *ws.Conn
	mu     sync.Mutex
	queue  [][]byte
	active bool
}

type result struct {
	m   relay.Message
	err error
}

// pushed is a push on its way to Pushes, with its frame's size.
type pushed struct {
	m    relay.Message
	size int
}

type logSub struct {
	token relay.ID
	next  uint64
}

// Dial connects to the relay at addr (tainik://<fingerprint>@host:port) and
// keeps the connection up until Close. It returns once the first
// connection is established.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	a, err := relay.ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.PushBuffer <= 0 {
		opts.PushBuffer = 1024
	}
	if opts.MaxBackoff < 50*time.Millisecond {
		opts.MaxBackoff = 50 * time.Millisecond
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 60 * time.Second
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if a.Fingerprint != "" {
		// The relay is trusted by key, not by certificate authority:
		// skip chain verification and check the pinned key instead.
		tlsConfig.InsecureSkipVerify = true
		tlsConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || relay.Fingerprint(cs.PeerCertificates[0]) != a.Fingerprint {
				return errors.New("relay: relay key does not match the pinned fingerprint")
			}
			return nil
		}
	}
	if opts.DialContext == nil {
		opts.DialContext = (&net.Dialer{}).DialContext
	}
	c := &Client{
		addr:      a,
		opts:      opts,
		tls:       tlsConfig,
		pushes:    make(chan relay.Message, opts.PushBuffer),
		lost:      make(chan *SubscriptionError, 64),
		done:      make(chan struct{}),
		connected: make(chan struct{}),
		pending:   make(map[uint32]chan result),
		queueSubs: make(map[relay.ID]Queue),
		logSubs:   make(map[relay.ID]*logSub),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.backlogCond = sync.NewCond(&c.backlogMu)
	context.AfterFunc(c.ctx, func() {
		c.backlogMu.Lock()
		c.backlogCond.Broadcast()
		c.backlogMu.Unlock()
	})
	ws, nonce, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.setConn(ws, nonce)
	go c.deliver()
	go c.run(ws)
	return c, nil
}

// push hands a push from the read loop to Pushes: directly when nothing
// is waiting and the channel has room, else through the backlog, which
// deliver empties. It returns false, and the read loop drops the
// connection, once the backlog holds MaxPushBacklog bytes or the client
// is closed: waiting for room instead would stop the answers to requests
// too, and a consumer waiting on one of them (an Ack from its push loop)
// would never drain Pushes. The push itself is kept, so nothing is lost:
// after the reconnect queue messages not yet acknowledged come again,
// and logs resume after the last entry received.
func (c *Client) push(p pushed) bool {
	c.backlogMu.Lock()
	defer c.backlogMu.Unlock()
	if c.ctx.Err() != nil {
		return false
	}
	if len(c.backlog) == 0 {
		select {
		case c.pushes <- p.m:
			return true
		default:
		}
	}
	c.backlog = append(c.backlog, p)
	c.backlogBytes += p.size
	c.backlogCond.Broadcast()
	return c.backlogBytes < MaxPushBacklog
}

// deliver moves the backlog to Pushes, oldest first. The head stays in the
// backlog until it is delivered, so the read loop queues behind it.
func (c *Client) deliver() {
	for {
		c.backlogMu.Lock()
		for len(c.backlog) == 0 && c.ctx.Err() == nil {
			c.backlogCond.Wait()
		}
		if c.ctx.Err() != nil {
			c.backlogMu.Unlock()
			return
		}
		head := c.backlog[0]
		c.backlogMu.Unlock()
		select {
		case c.pushes <- head.m:
		case <-c.ctx.Done():
			return
		}
		c.backlogMu.Lock()
		c.backlog[0] = pushed{}
		c.backlog = c.backlog[1:]
		if len(c.backlog) == 0 {
			c.backlog = nil
		}
		c.backlogBytes -= head.size
		c.backlogCond.Broadcast()
		c.backlogMu.Unlock()
	}
}

// Pushes delivers QueuePush and LogPush frames, and error frames the relay
// sends outside any request. Pushes the channel has no room for wait
// inside the client, up to MaxPushBacklog bytes; past that the client
// drops the connection and connects again (see MaxPushBacklog).
func (c *Client) Pushes() <-chan relay.Message { return c.pushes }

// Close closes the connection and stops reconnecting.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	w := c.ws
	c.mu.Unlock()
	if w != nil {
		w.Close(ws.StatusNormal, "")
	}
	<-c.done
	return nil
}

func (c *Client) connect(ctx context.Context) (*ws.Conn, [relay.NonceSize]byte, error) {
	var nonce [relay.NonceSize]byte
	w, err := c.dial(ctx)
	if err != nil {
		return nil, nonce, fmt.Errorf("relay: connecting to %s: %w", c.addr.HostPort, err)
	}
	stop := context.AfterFunc(ctx, func() { w.NetConn().SetReadDeadline(time.Unix(1, 0)) })
	frame, err := w.ReadMessage()
	if !stop() && err == nil {
		// ctx ended just as the Hello arrived; its past deadline would
		// break the next read.
		err = ctx.Err()
	}
	w.NetConn().SetReadDeadline(time.Time{})
	if err != nil {
		w.CloseNow()
		return nil, nonce, fmt.Errorf("relay: reading hello: %w", err)
	}
	_, m, err := relay.Decode(frame)
	hello, ok := m.(*relay.Hello)
	if err != nil || !ok {
		w.CloseNow()
		return nil, nonce, errors.New("relay: relay did not say hello")
	}
	return w, hello.Nonce, nil
}

// dial opens TCP, TLS and the WebSocket; the connection's deadline
// follows ctx until the relay's Hello is read.
func (c *Client) dial(ctx context.Context) (*ws.Conn, error) {
	raw, err := c.opts.DialContext(ctx, "tcp", c.addr.HostPort)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		raw.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			raw.Close() // ctx ended: the deadline may already be in the past
		}
	}()
	cfg := c.tls.Clone()
	if host, _, err := net.SplitHostPort(c.addr.HostPort); err == nil {
		cfg.ServerName = host
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	w, err := ws.Client(tc, c.addr.HostPort, relay.Path, relay.Subprotocol, c.opts.Header, relay.MaxResponseSize)
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	raw.SetWriteDeadline(time.Time{})
	return w, nil
}

func (c *Client) setConn(ws *ws.Conn, nonce [relay.NonceSize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws, c.nonce, c.wr = ws, nonce, &frameWriter{w: ws}
	close(c.connected)
}

// stableAfter is how long a connection must have lasted for the client
// to reconnect at once when it drops; a connection that drops sooner (a
// relay or middlebox that accepts and then closes) makes the client wait,
// longer each time up to MaxBackoff.
const stableAfter = 5 * time.Second

// run reads frames and reconnects when the connection drops.
func (c *Client) run(ws *ws.Conn) {
	defer close(c.done)
	var backoff time.Duration
	for {
		up := time.Now()
		c.readLoop(ws)
		c.mu.Lock()
		c.ws = nil
		c.connected = make(chan struct{})
		for id, ch := range c.pending {
			ch <- result{err: ErrDisconnected}
			delete(c.pending, id)
		}
		c.mu.Unlock()
		ws.CloseNow()
		if time.Since(up) >= stableAfter {
			backoff = 0
		}
		var nonce [relay.NonceSize]byte
		var err error
		for {
			if backoff > 0 {
				t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
				select {
				case <-c.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if c.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 50*time.Millisecond), c.opts.MaxBackoff)
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			ws, nonce, err = c.connect(ctx)
			cancel()
			if err == nil {
				break
			}
		}
		c.setConn(ws, nonce)
		c.resubscribe(ws)
	}
}

// frameTimeout bounds how long a frame may take to arrive once its first
// byte has: a 1 MiB answer at 6 KB/s (a poor mobile link) still makes it.
const frameTimeout = 3 * time.Minute

func (c *Client) readLoop(ws *ws.Conn) {
	stop := context.AfterFunc(c.ctx, func() { ws.CloseNow() })
	defer stop()
	pinged := false
	for {
		if c.opts.KeepAlive > 0 {
			idle, err := ws.WaitIdle(c.opts.KeepAlive)
			if err != nil {
				return
			}
			if idle {
				if pinged {
					return // not even the pong came back: the connection is dead
				}
				if ws.Ping(nil) != nil {
					return
				}
				pinged = true
				continue
			}
			pinged = false
			ws.NetConn().SetReadDeadline(time.Now().Add(max(frameTimeout, c.opts.KeepAlive)))
		}
		frame, err := ws.Next()
		if err != nil {
			return
		}
		if frame == nil {
			continue // a control frame: the pong, or a ping answered
		}
		id, m, err := relay.Decode(frame)
		var re *relay.Error
		if errors.As(err, &re) && re.Code == relay.CodeUnknownCommand {
			// A frame type this client does not know, from a newer
			// relay: skip a push; fail the request it answers.
			if id != 0 {
				c.answer(id, result{err: fmt.Errorf("relay: answer of a type this client does not know: %w", err)})
			}
			continue
		}
		if err != nil {
			return
		}
		if id == 0 {
			if lp, ok := m.(*relay.LogPush); ok {
				// Entries arrive in order; after a resubscription the
				// relay may repeat some, which are dropped here, as
				// are entries of a log unsubscribed meanwhile.
				c.mu.Lock()
				s := c.logSubs[lp.LogID]
				stale := s == nil || lp.Entry.Seq < s.next
				if !stale {
					s.next = lp.Entry.Seq + 1
				}
				c.mu.Unlock()
				if stale {
					continue
				}
			}
			if !c.push(pushed{m, len(frame)}) {
				return
			}
			continue
		}
		if ef, ok := m.(*relay.ErrorFrame); ok {
			c.answer(id, result{err: ef.Err()})
		} else {
			c.answer(id, result{m: m})
		}
	}
}

// answer hands r to the request waiting for id, if it still waits.
func (c *Client) answer(id uint32, r result) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// resubscribe renews subscriptions on the new connection w, in the
// background (answers arrive through the read loop). It stops if w drops:
// the next connection renews them itself.
func (c *Client) resubscribe(w *ws.Conn) {
	c.mu.Lock()
	qs := make([]Queue, 0, len(c.queueSubs))
	for _, q := range c.queueSubs {
		qs = append(qs, q)
	}
	type ls struct {
		id relay.ID
		s  logSub
	}
	logs := make([]ls, 0, len(c.logSubs))
	for id, s := range c.logSubs {
		logs = append(logs, ls{id, *s})
	}
	c.mu.Unlock()
	if len(qs) == 0 && len(logs) == 0 {
		return
	}
	go func() {
		for _, q := range qs {
			err := c.renew(w, func(nonce []byte) relay.Message {
				m := &relay.QueueSubscribe{}
				m.RecipientID = q.RecipientID
				relay.Sign(m, nonce, q.Key)
				return m
			})
			if errors.Is(err, ErrDisconnected) {
				return
			}
			if lostForGood(err) {
				c.mu.Lock()
				if c.queueSubs[q.RecipientID].Key.Equal(q.Key) {
					delete(c.queueSubs, q.RecipientID)
				}
				c.mu.Unlock()
				c.reportLost(&SubscriptionError{RecipientID: q.RecipientID, Err: err})
			}
		}
		for _, l := range logs {
			if !c.holdsLog(l.id) {
				continue // unsubscribed meanwhile
			}
			err := c.renew(w, func([]byte) relay.Message {
				return &relay.LogSubscribe{LogID: l.id, Token: l.s.token, From: l.s.next}
			})
			if errors.Is(err, ErrDisconnected) {
				return
			}
			if err == nil && !c.holdsLog(l.id) {
				// UnsubscribeLog ran while the renewal was on its
				// way, and its LogUnsubscribe may have gone first.
				c.renew(w, func([]byte) relay.Message { return &relay.LogUnsubscribe{LogID: l.id} })
			}
			if lostForGood(err) {
				c.mu.Lock()
				if s := c.logSubs[l.id]; s != nil && s.token == l.s.token {
					delete(c.logSubs, l.id)
				}
				c.mu.Unlock()
				c.reportLost(&SubscriptionError{LogID: l.id, Err: err})
			}
		}
	}()
}

// holdsLog says whether the client holds a subscription to the log.
func (c *Client) holdsLog(id relay.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logSubs[id] != nil
}

// renew sends one resubscription on w, trying again a few times when the
// relay answers that it is busy or failing for the moment.
func (c *Client) renew(w *ws.Conn, build func(nonce []byte) relay.Message) error {
	for attempt := 0; ; attempt++ {
		_, err := c.request(c.ctx, w, build)
		var re *relay.Error
		if attempt < 3 && errors.As(err, &re) && (re.Code == relay.CodeTooManyRequests || re.Code == relay.CodeInternal) {
			select {
			case <-time.After(100 * time.Millisecond << attempt):
				continue
			case <-c.ctx.Done():
				return ErrClosed
			}
		}
		if errors.As(err, &re) && re.Code == relay.CodeShuttingDown {
			return ErrDisconnected // the next connection renews it
		}
		return err
	}
}

// lostForGood says whether the relay's answer to a resubscription means
// it can never be renewed: the queue or log is gone, its key or token no
// longer works, or the connection holds too many subscriptions. A failing
// or busy relay, an answer this client does not know, or the client's
// own closing leave the subscription to the next connection.
func lostForGood(err error) bool {
	var re *relay.Error
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case relay.CodeNotFound, relay.CodeAuth, relay.CodeBadSignature, relay.CodeBadRequest, relay.CodeTooManySubscriptions:
		return true
	}
	return false
}

// SubscriptionError reports a subscription the relay refused to renew
// after a reconnect (the queue or log is gone, its key or token is no
// longer accepted, or the connection holds too many subscriptions). The
// client has dropped the subscription.
type SubscriptionError struct {
	RecipientID relay.ID // the queue's, or zero for a log
	LogID       relay.ID // the log's, or zero for a queue
	Err         error
}

func (e *SubscriptionError) Error() string {
	if e.LogID != (relay.ID{}) {
		return fmt.Sprintf("relay: log subscription %x… lost: %v", e.LogID[:4], e.Err)
	}
	return fmt.Sprintf("relay: queue subscription %x… lost: %v", e.RecipientID[:4], e.Err)
}

func (e *SubscriptionError) Unwrap() error { return e.Err }

// SubscriptionErrors delivers a SubscriptionError for each subscription
// the relay refused to renew. It holds the last 64 unread; older ones are
// dropped (the subscriptions are dropped all the same).
func (c *Client) SubscriptionErrors() <-chan *SubscriptionError { return c.lost }

func (c *Client) reportLost(e *SubscriptionError) {
	for {
		select {
		case c.lost <- e:
			return
		default:
		}
		select {
		case <-c.lost: // make room: keep the newest
		default:
		}
	}
}

// do sends one request and waits for its answer. build gets the session
// nonce for signing; it is called again if the connection is replaced
// before the request goes out.
func (c *Client) do(ctx context.Context, build func(nonce []byte) relay.Message) (relay.Message, error) {
	return c.request(ctx, nil, build)
}

// request is do on connection on only, when on is not nil: if that one is
// gone it returns ErrDisconnected rather than use the next.
func (c *Client) request(ctx context.Context, on *ws.Conn, build func(nonce []byte) relay.Message) (relay.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, notSent{err}
	}
	for {
		c.mu.Lock()
		ws, wr, nonce, connected := c.ws, c.wr, c.nonce, c.connected
		c.mu.Unlock()
		if on != nil && ws != on {
			return nil, ErrDisconnected
		}
		if ws == nil {
			select {
			case <-connected:
				continue
			case <-ctx.Done():
				return nil, notSent{ctx.Err()}
			case <-c.ctx.Done():
				return nil, notSent{ErrClosed}
			}
		}
		ch := make(chan result, 1)
		c.mu.Lock()
		if c.ws != ws {
			c.mu.Unlock()
			continue
		}
		id := c.newID()
		c.pending[id] = ch
		c.mu.Unlock()
		frame := relay.Encode(id, build(nonce[:]))
		if len(frame) > relay.MaxFrameSize {
			// The relay would take it for a broken stream and
			// close the connection, failing every other request.
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			return nil, relay.Errorf(relay.CodeTooLarge, "request of %d bytes is larger than the relay's limit of %d", len(frame), relay.MaxFrameSize)
		}
		if err := wr.write(frame); err != nil {
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, ErrDisconnected
		}
		var timeout <-chan time.Time
		if c.opts.AnswerTimeout > 0 {
			t := time.NewTimer(c.opts.AnswerTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case r := <-ch:
			return r.m, r.err
		case <-ctx.Done():
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			return nil, ctx.Err()
		case <-timeout:
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			return nil, ErrNoAnswer
		}
	}
}

// newID returns the next request id. Ids wrap after 2³² requests; it
// skips 0 (pushes) and any id a request still waits on. Called with mu
// held.
func (c *Client) newID() uint32 {
	for c.nextID++; c.nextID == 0 || c.pending[c.nextID] != nil; c.nextID++ {
	}
	return c.nextID
}

// write queues frame and, unless another request is writing already,
// writes every queued frame in one go. Frames that other requests queue
// meanwhile are written by a goroutine of its own, so the caller goes
// back to waiting for its answer after one write, however busy the
// connection. A frame queued behind a write that fails is answered
// through its pending entry when the read loop sees the connection drop.
func (fw *frameWriter) write(frame []byte) error {
	fw.mu.Lock()
	fw.queue = append(fw.queue, frame)
	if fw.active {
		fw.mu.Unlock()
		return nil
	}
	fw.active = true
	fw.mu.Unlock()
	if err := fw.writeOnce(); err != nil {
		return err
	}
	if !fw.idle() {
		go fw.drain()
	}
	return nil
}

// writeOnce writes every queued frame in one write. The caller holds the
// writer role (active); a failed write gives it up and closes the
// connection.
func (fw *frameWriter) writeOnce() error {
	fw.mu.Lock()
	batch := fw.queue
	fw.queue = nil
	fw.mu.Unlock()
	err := fw.w.WriteMessages(time.Now().Add(relay.WriteTimeout), batch...)
	if err != nil {
		fw.mu.Lock()
		fw.queue, fw.active = nil, false
		fw.mu.Unlock()
		fw.w.CloseNow()
	}
	return err
}

// idle gives up the writer role if nothing is queued, and says whether it
// did.
func (fw *frameWriter) idle() bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.queue) > 0 {
		return false
	}
	fw.active = false
	return true
}

// drain writes what other requests queued while the connection was busy,
// until nothing is left or a write fails.
func (fw *frameWriter) drain() {
	for fw.writeOnce() == nil && !fw.idle() {
	}
}

func expect[T relay.Message](m relay.Message, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("relay: unexpected %T answer", m)
	}
	return t, nil
}

// Queue is the recipient's handle on a queue: both identifiers and the
// recipient key. The recipient gives only SenderID to senders.
type Queue struct {
	RecipientID relay.ID
	SenderID    relay.ID
	Key         ed25519.PrivateKey
}

// CreateQueue creates a queue with a new recipient key. A contact queue is a
// contact address: its SenderID may be published.
func (c *Client) CreateQueue(ctx context.Context, contact bool) (Queue, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return Queue{}, err
	}
	r, err := expect[*relay.QueueCreated](c.do(ctx, func(nonce []byte) relay.Message {
		m := &relay.QueueCreate{Contact: contact}
		copy(m.RecipientKey[:], pub)
		relay.Sign(m, nonce, priv)
		return m
	}))
	if err != nil {
		return Queue{}, err
	}
	return Queue{RecipientID: r.RecipientID, SenderID: r.SenderID, Key: priv}, nil
}

// LockQueue locks the queue to one sender key.
func (c *Client) LockQueue(ctx context.Context, q Queue, senderKey ed25519.PublicKey) error {
	_, err := expect[*relay.OK](c.do(ctx, func(nonce []byte) relay.Message {
		m := &relay.QueueLock{RecipientID: q.RecipientID}
		copy(m.SenderKey[:], senderKey)
		relay.Sign(m, nonce, q.Key)
		return m
	}))
	return err
}

// Send pads content and sends it to the queue named by senderID. senderKey
// signs the send for a locked queue; nil for an unlocked one. When Send
// returns nil the message is on the relay's disk.
func (c *Client) Send(ctx context.Context, senderID relay.ID, id relay.MsgID, content []byte, senderKey ed25519.PrivateKey) error {
	padded, err := relay.Pad(content)
	if err != nil {
		return err
	}
	_, err = expect[*relay.OK](c.do(ctx, func(nonce []byte) relay.Message {
		m := &relay.QueueSend{SenderID: senderID, MsgID: id, Payload: padded}
		if senderKey != nil {
			relay.Sign(m, nonce, senderKey)
		}
		return m
	}))
	return err
}

// Subscribe asks for the queue's messages as QueuePush frames on Pushes,
// and renews the subscription after every reconnect. If the relay refuses
// it, the client's subscriptions are as before the call. If the outcome
// is unknown (ErrDisconnected, or ctx ended once the request was on its
// way) the subscription stays registered and is renewed at the next
// connection.
func (c *Client) Subscribe(ctx context.Context, q Queue) error {
	c.mu.Lock()
	old, had := c.queueSubs[q.RecipientID]
	c.queueSubs[q.RecipientID] = q
	c.mu.Unlock()
	_, err := expect[*relay.OK](c.do(ctx, func(nonce []byte) relay.Message {
		m := &relay.QueueSubscribe{}
		m.RecipientID = q.RecipientID
		relay.Sign(m, nonce, q.Key)
		return m
	}))
	if Refused(err) {
		c.mu.Lock()
		if had {
			c.queueSubs[q.RecipientID] = old
		} else {
			delete(c.queueSubs, q.RecipientID)
		}
		c.mu.Unlock()
	}
	return err
}

// Refused says whether err, from a request, is a definite answer that
// the request was not carried out: the relay's refusal, or an error from
// before the request went out. After ErrDisconnected, ErrNoAnswer or a
// context error once it was sent, it may have been.
func Refused(err error) bool {
	var re *relay.Error
	var ns notSent
	return errors.As(err, &re) || errors.As(err, &ns)
}

// NotSent marks err as one that stopped a request before it went out, for
// Refused (a caller's own step before the request, such as dialling).
func NotSent(err error) error { return notSent{err} }

// notSent wraps the error that stopped a request before it went out.
type notSent struct{ err error }

func (e notSent) Error() string { return e.err.Error() }
func (e notSent) Unwrap() error { return e.err }

// Receive returns the oldest unacknowledged messages.
func (c *Client) Receive(ctx context.Context, q Queue) ([]relay.QueueMessage, error) {
	r, err := expect[*relay.Messages](c.do(ctx, func(nonce []byte) relay.Message {
		m := &relay.QueueReceive{}
		m.RecipientID = q.RecipientID
		relay.Sign(m, nonce, q.Key)
		return m
	}))
	if err != nil {
		return nil, err
	}
	return r.Messages, nil
}

// Ack acknowledges, and so deletes, messages, in requests of at most
// relay.MaxAck ids. It returns a CodeNotFound error only if none of them
// was in the queue, and an error without asking the relay if ids is
// empty.
func (c *Client) Ack(ctx context.Context, q Queue, ids ...relay.MsgID) error {
	if len(ids) == 0 {
		return relay.Errorf(relay.CodeBadRequest, "no message ids to acknowledge")
	}
	var notFound error
	found := false
	for len(ids) > 0 {
		batch := ids[:min(len(ids), relay.MaxAck)]
		ids = ids[len(batch):]
		_, err := expect[*relay.OK](c.do(ctx, func(nonce []byte) relay.Message {
			m := &relay.QueueAck{RecipientID: q.RecipientID, MsgIDs: batch}
			relay.Sign(m, nonce, q.Key)
			return m
		}))
		var re *relay.Error
		switch {
		case err == nil:
			found = true
		case errors.As(err, &re) && re.Code == relay.CodeNotFound:
			notFound = err
		default:
			return err
		}
	}
	if !found {
		return notFound
	}
	return nil
}

// DeleteQueue deletes a queue and its messages, and ends the client's
// subscription to it unless the relay refused the deletion.
func (c *Client) DeleteQueue(ctx context.Context, q Queue) error {
	_, err := expect[*relay.OK](c.do(ctx, func(nonce []byte) relay.Message {
		m := &relay.QueueDelete{}
		m.RecipientID = q.RecipientID
		relay.Sign(m, nonce, q.Key)
		return m
	}))
	var re *relay.Error
	if !Refused(err) || (errors.As(err, &re) && re.Code == relay.CodeNotFound) {
		c.mu.Lock()
		delete(c.queueSubs, q.RecipientID)
		c.mu.Unlock()
	}
	return err
}

// Log is a member's handle on a group log.
type Log struct {
	ID    relay.ID
	Token relay.ID
}

// CreateLog creates a log for an MLS group at epoch and returns its
// handle; the creator shares it with members inside MLS.
func (c *Client) CreateLog(ctx context.Context, groupID []byte, epoch uint64) (Log, error) {
	if len(groupID) == 0 || len(groupID) > relay.MaxGroupID {
		return Log{}, relay.Errorf(relay.CodeBadRequest, "group id of %d bytes: it must have 1 to %d", len(groupID), relay.MaxGroupID)
	}
	var token relay.ID
	crand.Read(token[:])
	r, err := expect[*relay.LogCreated](c.do(ctx, func([]byte) relay.Message {
		return &relay.LogCreate{GroupID: groupID, Epoch: epoch, TokenHash: sha256.Sum256(token[:])}
	}))
	if err != nil {
		return Log{}, err
	}
	return Log{ID: r.LogID, Token: token}, nil
}

// Append appends an MLSMessage and returns its sequence number and the
// log's epoch after it. A losing commit gets an *relay.Error with
// relay.CodeStaleEpoch and the current epoch in Detail.
func (c *Client) Append(ctx context.Context, l Log, msg []byte) (seq, epoch uint64, err error) {
	return c.AppendExpiring(ctx, l, msg, 0)
}

// AppendExpiring is Append for an entry the relay deletes, and stops
// serving, after ttl rather than after the log's retention. ttl is
// rounded down to whole seconds, but is at least one second; zero means
// the retention. Use it for application messages only: members catching
// up need every commit and proposal.
func (c *Client) AppendExpiring(ctx context.Context, l Log, msg []byte, ttl time.Duration) (seq, epoch uint64, err error) {
	if ttl < 0 {
		return 0, 0, fmt.Errorf("relay: negative ttl %v", ttl)
	}
	var secs uint32
	if ttl > 0 {
		secs = uint32(min(max(ttl/time.Second, 1), math.MaxUint32))
	}
	r, err := expect[*relay.LogAppended](c.do(ctx, func([]byte) relay.Message {
		return &relay.LogAppend{LogID: l.ID, Token: l.Token, TTL: secs, Message: msg}
	}))
	if err != nil {
		return 0, 0, err
	}
	return r.Seq, r.Epoch, nil
}

// Read returns entries from sequence number from on.
func (c *Client) Read(ctx context.Context, l Log, from uint64) (*relay.LogEntries, error) {
	return expect[*relay.LogEntries](c.do(ctx, func([]byte) relay.Message {
		return &relay.LogRead{LogID: l.ID, Token: l.Token, From: from}
	}))
}

// SubscribeLog asks for entries from from on as LogPush frames, and renews
// the subscription after a reconnect from the entry after the last one
// received.
//
// As with Subscribe, a refusal leaves the client's subscriptions (and the
// log's cursor) as they were, and an unknown outcome leaves this one
// registered.
func (c *Client) SubscribeLog(ctx context.Context, l Log, from uint64) error {
	c.mu.Lock()
	old, had := c.logSubs[l.ID]
	var prev logSub
	if had {
		prev = *old
	}
	c.logSubs[l.ID] = &logSub{token: l.Token, next: from}
	c.mu.Unlock()
	_, err := expect[*relay.OK](c.do(ctx, func([]byte) relay.Message {
		return &relay.LogSubscribe{LogID: l.ID, Token: l.Token, From: from}
	}))
	if Refused(err) {
		c.mu.Lock()
		if had {
			c.logSubs[l.ID] = &prev
		} else {
			delete(c.logSubs, l.ID)
		}
		c.mu.Unlock()
	}
	return err
}

// Subscribed says whether the client holds the queue's subscription (by
// its recipient id), which it renews after every reconnect. It is false
// again once the relay refused to renew it (see SubscriptionErrors) or
// the queue was deleted through this client.
func (c *Client) Subscribed(recipientID relay.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.queueSubs[recipientID]
	return ok
}

// SubscribedLog is Subscribed for a log subscription.
func (c *Client) SubscribedLog(logID relay.ID) bool { return c.holdsLog(logID) }

// UnsubscribeLog ends the log's subscription: the client stops renewing
// it and drops its pushes, and asks the relay to stop sending them. A
// relay that predates the command (unknown_command) keeps pushing on this
// connection until it drops; the client drops those pushes too.
func (c *Client) UnsubscribeLog(ctx context.Context, logID relay.ID) error {
	c.mu.Lock()
	delete(c.logSubs, logID)
	c.mu.Unlock()
	_, err := expect[*relay.OK](c.do(ctx, func([]byte) relay.Message {
		return &relay.LogUnsubscribe{LogID: logID}
	}))
	var re *relay.Error
	if errors.As(err, &re) && re.Code == relay.CodeUnknownCommand {
		return nil
	}
	return err
}

// Connected says whether the client holds a connection to the relay now.
// While it holds none, it is reconnecting, and requests wait for the next
// connection (or their context).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws != nil
}
