// Package ws is the WebSocket layer (RFC 6455) under the relay protocol:
// the opening handshake on both sides and a framing that carries binary
// messages only, with no extensions (so no compression, RFC 6455
// Section 9).
//
// It exists, instead of a general WebSocket library, for two things the
// relay needs at scale: a writer can put many messages into one TLS
// record and one system call (WriteMessages), and a server can tell when a
// connection has gone quiet without consuming any of its bytes (WaitIdle),
// so that an idle connection holds no goroutine and no read buffer.
package ws

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"
)

// Opcodes, RFC 6455 Section 5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close status codes used by the relay, RFC 6455 Section 7.4.1.
const (
	StatusNormal          = 1000
	StatusGoingAway       = 1001
	StatusProtocolError   = 1002
	StatusUnsupportedData = 1003
	StatusPolicyViolation = 1008
	StatusTooBig          = 1009
)

// readBufferSize is the size of the pooled read buffer. TLS keeps a
// whole record itself, so a small buffer costs calls into TLS, not
// system calls.
const readBufferSize = 4 << 10

// maxControlPayload bounds control frames, RFC 6455 Section 5.5.
const maxControlPayload = 125

// controlWriteTimeout bounds the answer to a ping or a close.
const controlWriteTimeout = time.Second

// ErrClosed is returned by ReadMessage after the peer closed the
// WebSocket with a close frame. CloseError carries the peer's status.
var ErrClosed = errors.New("ws: connection closed by peer")

// CloseError is the peer's close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("ws: closed by peer: %d %s", e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrClosed) true for a CloseError.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// ProtocolError is a violation of RFC 6455 or of this package's profile
// (text frames, extensions, oversized messages) by the peer. Code is the
// status to close with.
type ProtocolError struct {
	Code    int
	Message string
}

func (e *ProtocolError) Error() string { return "ws: " + e.Message }

func protocolErrorf(code int, format string, args ...any) error {
	return &ProtocolError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// readStep is how much of a message the reader allocates ahead of the
// bytes that arrive.
const readStep = 16 << 10

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

var writeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// Conn is one WebSocket connection. One goroutine may read while others
// write: writes are serialised inside.
type Conn struct {
	nc     net.Conn
	client bool // a client masks what it sends; a server requires masks
	limit  int

	// Reading; owned by the reading goroutine.
	pre []byte        // bytes the handshake read past its end
	br  *bufio.Reader // nil while idle on a server

	wmu    sync.Mutex
	closed bool // a close frame was sent; guarded by wmu
}

func newConn(nc net.Conn, client bool, limit int, pre []byte, br *bufio.Reader) *Conn {
	return &Conn{nc: nc, client: client, limit: limit, pre: pre, br: br}
}

// NetConn returns the underlying connection, for deadlines and addresses.
func (c *Conn) NetConn() net.Conn { return c.nc }

// reader returns the read buffer, taking one from the pool if the
// connection was idle.
func (c *Conn) reader() *bufio.Reader {
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(preReader{c})
	}
	return c.br
}

// preReader serves the bytes the handshake over-read before the
// connection's own.
type preReader struct{ c *Conn }

func (p preReader) Read(b []byte) (int, error) {
	if len(p.c.pre) > 0 {
		n := copy(b, p.c.pre)
		p.c.pre = p.c.pre[n:]
		if len(p.c.pre) == 0 {
			p.c.pre = nil
		}
		return n, nil
	}
	return p.c.nc.Read(b)
}

// WaitIdle waits up to d for the next byte from the peer without
// consuming it. It returns true if the peer sent nothing in that time:
// then no byte of a message has been read, the read buffer is back in
// its pool, and the connection can be watched by other means (a server's
// poller) until the peer sends again. It returns false with a nil error
// when data is waiting, and the connection's read error otherwise. It
// leaves a read deadline set: the caller sets its own before reading.
func (c *Conn) WaitIdle(d time.Duration) (bool, error) {
	if len(c.pre) > 0 || (c.br != nil && c.br.Buffered() > 0) {
		return false, nil
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return false, err
	}
	_, err := c.reader().Peek(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// Nothing was buffered: the timeout came from the first read.
		readers.Put(c.br)
		c.br = nil
		return true, nil
	}
	return false, err
}

// ReadMessage reads the next binary message, answering pings and closes
// on the way. A text message, an extension bit, a message over the
// limit or a framing error is a *ProtocolError; a close frame from the
// peer is a *CloseError (errors.Is ErrClosed). The returned slice is the
// caller's.
func (c *Conn) ReadMessage() ([]byte, error) {
	for {
		msg, err := c.next()
		if msg != nil || err != nil {
			return msg, err
		}
	}
}

// Next is ReadMessage for a server's read loop: it also returns, with a
// nil message and error, after answering a ping or taking a pong that
// arrived between messages, so that a client's keep-alives count as
// activity without holding the loop to a message deadline.
func (c *Conn) Next() ([]byte, error) { return c.next() }

func (c *Conn) next() ([]byte, error) {
	br := c.reader()
	var msg []byte
	fragmented := false
	for {
		h, err := readHeader(br, c.client)
		if err != nil {
			return nil, err
		}
		switch h.op {
		case opPing, opPong, opClose:
			p := make([]byte, h.length)
			if _, err := io.ReadFull(br, p); err != nil {
				return nil, err
			}
			h.unmask(p)
			if err := c.control(h.op, p); err != nil {
				return nil, err
			}
			if !fragmented {
				return nil, nil
			}
			continue
		case opText:
			return nil, protocolErrorf(StatusUnsupportedData, "text messages are not accepted")
		case opBinary:
			if fragmented {
				return nil, protocolErrorf(StatusProtocolError, "new message inside a fragmented message")
			}
		case opContinuation:
			if !fragmented {
				return nil, protocolErrorf(StatusProtocolError, "continuation frame without a message")
			}
		default:
			return nil, protocolErrorf(StatusProtocolError, "reserved opcode %#x", h.op)
		}
		if uint64(len(msg))+h.length > uint64(c.limit) {
			return nil, protocolErrorf(StatusTooBig, "message larger than %d bytes", c.limit)
		}
		// Grow the message as its bytes arrive, not by what the
		// header declares: a peer that sends a header and stops
		// must not pin a whole message's worth of memory.
		start := len(msg)
		for left := h.length; left > 0; {
			n := min(left, readStep)
			msg = append(msg, make([]byte, n)...)
			if _, err := io.ReadFull(br, msg[len(msg)-int(n):]); err != nil {
				return nil, err
			}
			left -= n
		}
		h.unmask(msg[start:])
		if h.fin {
			if msg == nil {
				msg = []byte{} // an empty message is not "no message"
			}
			return msg, nil
		}
		fragmented = true
	}
}

// control answers a control frame, RFC 6455 Section 5.5.
func (c *Conn) control(op byte, p []byte) error {
	switch op {
	case opPing:
		return c.writeControl(opPong, p)
	case opPong:
		return nil
	}
	ce := &CloseError{Code: 1005} // no status received, RFC 6455 Section 7.4.1
	switch {
	case len(p) == 1:
		return protocolErrorf(StatusProtocolError, "close frame with a one-byte body")
	case len(p) >= 2:
		ce.Code = int(binary.BigEndian.Uint16(p))
		ce.Reason = string(p[2:])
		if !validCloseCode(ce.Code) {
			return protocolErrorf(StatusProtocolError, "close code %d may not be sent", ce.Code)
		}
		if !utf8.ValidString(ce.Reason) {
			return protocolErrorf(StatusProtocolError, "close reason is not UTF-8")
		}
	}
	// Echo the status back and let the caller close the connection.
	echo := p
	if len(p) > 2 {
		echo = p[:2]
	}
	c.writeControl(opClose, echo)
	return ce
}

// validCloseCode reports whether an endpoint may send code in a close
// frame, RFC 6455 Section 7.4: the defined codes other than those that
// only describe a missing frame, and the registered and private ranges.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// Ping sends a ping (RFC 6455 Section 5.5.2) with payload p, at most 125
// bytes. The peer's pong arrives through Next or ReadMessage, which take
// it silently; a keep-alive looks for any frame from the peer, not for
// the pong itself.
func (c *Conn) Ping(p []byte) error {
	if len(p) > 125 {
		return protocolErrorf(StatusProtocolError, "ping payload of %d bytes, more than 125", len(p))
	}
	return c.writeControl(opPing, p)
}

func (c *Conn) writeControl(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil
	}
	if op == opClose {
		c.closed = true
	}
	buf := appendFrame(nil, op, p, c.client)
	c.nc.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	_, err := c.nc.Write(buf)
	c.nc.SetWriteDeadline(time.Time{})
	return err
}

// WriteMessages sends msgs as binary messages in one write to the
// connection, so that they share TLS records and system calls. If the
// peer does not take them before the deadline, the connection is no
// longer usable (a TLS write that timed out cannot be resumed).
func (c *Conn) WriteMessages(deadline time.Time, msgs ...[]byte) error {
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, m := range msgs {
		buf = appendFrame(buf, opBinary, m, c.client)
	}
	c.wmu.Lock()
	var err error
	if c.closed {
		err = net.ErrClosed
	} else {
		c.nc.SetWriteDeadline(deadline)
		_, err = c.nc.Write(buf)
	}
	c.wmu.Unlock()
	// Large buffers are not kept: a burst should not pin memory.
	if cap(buf) <= 256<<10 {
		*bp = buf
		writeBuffers.Put(bp)
	}
	return err
}

// Close sends a close frame with code and reason (waiting at most a
// second for the peer to take it) and closes the connection.
func (c *Conn) Close(code int, reason string) error {
	if len(reason) > maxControlPayload-2 {
		// Cut at a character boundary: the reason must stay UTF-8.
		n := maxControlPayload - 2
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	c.writeControl(opClose, append(p, reason...))
	return c.nc.Close()
}

// CloseNow closes the connection without a close frame.
func (c *Conn) CloseNow() error { return c.nc.Close() }

// header is a frame header, RFC 6455 Section 5.2.
type header struct {
	fin    bool
	op     byte
	masked bool
	mask   [4]byte
	length uint64
}

func (h *header) unmask(p []byte) {
	if h.masked {
		maskBytes(h.mask, 0, p)
	}
}

// readHeader reads and checks one frame header. A server (fromServer
// false) requires masked frames; a client requires unmasked ones.
func readHeader(br *bufio.Reader, fromServer bool) (header, error) {
	var h header
	var b [8]byte
	if _, err := io.ReadFull(br, b[:2]); err != nil {
		return h, err
	}
	h.fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return h, protocolErrorf(StatusProtocolError, "reserved bits set (no extension was negotiated)")
	}
	h.op = b[0] & 0x0f
	h.masked = b[1]&0x80 != 0
	if h.masked == fromServer {
		if fromServer {
			return h, protocolErrorf(StatusProtocolError, "masked frame from the server")
		}
		return h, protocolErrorf(StatusProtocolError, "unmasked frame from the client")
	}
	switch n := b[1] & 0x7f; n {
	case 126:
		if _, err := io.ReadFull(br, b[:2]); err != nil {
			return h, err
		}
		h.length = uint64(binary.BigEndian.Uint16(b[:2]))
		if h.length < 126 {
			return h, protocolErrorf(StatusProtocolError, "non-minimal frame length")
		}
	case 127:
		if _, err := io.ReadFull(br, b[:8]); err != nil {
			return h, err
		}
		h.length = binary.BigEndian.Uint64(b[:8])
		if h.length>>63 != 0 {
			return h, protocolErrorf(StatusProtocolError, "frame length with the top bit set")
		}
		if h.length <= 0xffff {
			return h, protocolErrorf(StatusProtocolError, "non-minimal frame length")
		}
	default:
		h.length = uint64(n)
	}
	if h.op >= opClose && (h.length > maxControlPayload || !h.fin) {
		return h, protocolErrorf(StatusProtocolError, "control frame too long or fragmented")
	}
	if h.masked {
		if _, err := io.ReadFull(br, h.mask[:]); err != nil {
			return h, err
		}
	}
	return h, nil
}

// appendFrame appends one unfragmented frame. A client masks it with a
// fresh random key, RFC 6455 Section 5.3.
func appendFrame(buf []byte, op byte, p []byte, mask bool) []byte {
	b1 := byte(0)
	if mask {
		b1 = 0x80
	}
	buf = append(buf, 0x80|op)
	switch n := len(p); {
	case n < 126:
		buf = append(buf, b1|byte(n))
	case n <= 0xffff:
		buf = binary.BigEndian.AppendUint16(append(buf, b1|126), uint16(n))
	default:
		buf = binary.BigEndian.AppendUint64(append(buf, b1|127), uint64(n))
	}
	if !mask {
		return append(buf, p...)
	}
	var key [4]byte
	rand.Read(key[:])
	buf = append(buf, key[:]...)
	start := len(buf)
	buf = append(buf, p...)
	maskBytes(key, 0, buf[start:])
	return buf
}

// maskBytes XORs p with the masking key, starting at key position pos,
// RFC 6455 Section 5.3.
func maskBytes(key [4]byte, pos int, p []byte) {
	i := 0
	if len(p) >= 8 {
		// Rotate the key to pos and apply it eight bytes at a time.
		var k8 [8]byte
		for j := range k8 {
			k8[j] = key[(pos+j)&3]
		}
		kw := binary.LittleEndian.Uint64(k8[:])
		for ; i+8 <= len(p); i += 8 {
			binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^kw)
		}
	}
	for ; i < len(p); i++ {
		p[i] ^= key[(pos+i)&3]
	}
}

// acceptKey is Sec-WebSocket-Accept for a Sec-WebSocket-Key, RFC 6455
// Section 4.2.2.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
