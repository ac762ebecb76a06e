package ws

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const proto = "test.v1"

// pair returns a server and a client Conn joined by a real handshake over
// loopback.
func pair(t *testing.T) (srv, cli *Conn) {
	t.Helper()
	got := make(chan *Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, proto, 1<<20)
		if err != nil {
			t.Errorf("Accept: %v", err)
			return
		}
		got <- c
	}))
	t.Cleanup(hs.Close)
	nc, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli, err = Client(nc, hs.Listener.Addr().String(), "/", proto, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	srv = <-got
	t.Cleanup(func() { srv.CloseNow(); cli.CloseNow() })
	return srv, cli
}

func TestRoundTrip(t *testing.T) {
	srv, cli := pair(t)
	// Sizes cover the three length encodings of RFC 6455 Section 5.2.
	var msgs [][]byte
	for _, n := range []int{0, 1, 125, 126, 1000, 65535, 65536, 200000} {
		m := make([]byte, n)
		rand.Read(m)
		msgs = append(msgs, m)
	}
	for _, dir := range []struct {
		name string
		w, r *Conn
	}{{"client to server", cli, srv}, {"server to client", srv, cli}} {
		t.Run(dir.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() { errc <- dir.w.WriteMessages(time.Now().Add(5*time.Second), msgs...) }()
			for i, want := range msgs {
				got, err := dir.r.ReadMessage()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(want))
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseHandshake(t *testing.T) {
	srv, cli := pair(t)
	go cli.Close(StatusGoingAway, "bye")
	_, err := srv.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != StatusGoingAway || ce.Reason != "bye" || !errors.Is(err, ErrClosed) {
		t.Fatalf("server read %v, want close 1001 bye", err)
	}
	if err := srv.WriteMessages(time.Now().Add(time.Second), []byte("x")); err == nil {
		t.Fatal("write after the close frame succeeded")
	}
}

// rawClient writes hand-made frames to a server Conn.
func rawServer(t *testing.T, limit int) (*Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return newConn(a, false, limit, nil, nil), b
}

func frame(fin bool, op byte, p []byte, masked bool) []byte {
	f := appendFrame(nil, op, p, masked)
	if !fin {
		f[0] &^= 0x80
	}
	return f
}

func TestFragmentsAndPing(t *testing.T) {
	srv, peer := rawServer(t, 1<<20)
	go func() {
		var buf []byte
		buf = append(buf, frame(false, opBinary, []byte("hello, "), true)...)
		buf = append(buf, frame(true, opPing, []byte("are you there"), true)...)
		buf = append(buf, frame(true, opContinuation, []byte("world"), true)...)
		peer.Write(buf)
	}()
	pong := make(chan []byte, 1)
	go func() {
		br := make([]byte, 64)
		n, _ := io.ReadAtLeast(peer, br, 2+len("are you there"))
		pong <- br[:n]
	}()
	got, err := srv.ReadMessage()
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("got %q, %v", got, err)
	}
	p := <-pong
	if p[0] != 0x80|opPong || string(p[2:]) != "are you there" {
		t.Fatalf("pong frame % x", p)
	}
}

func TestProtocolErrors(t *testing.T) {
	long := binary.BigEndian.AppendUint16([]byte{0x80 | opBinary, 0x80 | 126}, 10)
	tests := []struct {
		name  string
		bytes []byte
		code  int
	}{
		{"text", frame(true, opText, []byte("hi"), true), StatusUnsupportedData},
		{"unmasked", frame(true, opBinary, []byte("hi"), false), StatusProtocolError},
		{"reserved bit", func() []byte { f := frame(true, opBinary, []byte("hi"), true); f[0] |= 0x40; return f }(), StatusProtocolError},
		{"reserved opcode", frame(true, 0x3, []byte("hi"), true), StatusProtocolError},
		{"too big", frame(true, opBinary, make([]byte, 101), true), StatusTooBig},
		{"non-minimal length", long, StatusProtocolError},
		{"fragmented ping", frame(false, opPing, nil, true), StatusProtocolError},
		{"long ping", frame(true, opPing, make([]byte, 126), true), StatusProtocolError},
		{"stray continuation", frame(true, opContinuation, []byte("x"), true), StatusProtocolError},
		{"message inside message", append(frame(false, opBinary, []byte("a"), true), frame(true, opBinary, []byte("b"), true)...), StatusProtocolError},
		{"one-byte close", frame(true, opClose, []byte{3}, true), StatusProtocolError},
		{"close code 1005 sent", frame(true, opClose, []byte{0x03, 0xed}, true), StatusProtocolError},
		{"close code 999", frame(true, opClose, []byte{0x03, 0xe7}, true), StatusProtocolError},
		{"close code 5000", frame(true, opClose, []byte{0x13, 0x88}, true), StatusProtocolError},
		{"close reason not UTF-8", frame(true, opClose, []byte{0x03, 0xe8, 0xff}, true), StatusProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, peer := rawServer(t, 100)
			go peer.Write(tt.bytes)
			go io.Copy(io.Discard, peer)
			_, err := srv.ReadMessage()
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("got %v, want protocol error %d", err, tt.code)
			}
		})
	}
}

// TestNextReturnsOnControl: a server's read loop gets control after a
// ping between messages, and the next message after it.
func TestNextReturnsOnControl(t *testing.T) {
	srv, peer := rawServer(t, 100)
	go func() {
		peer.Write(frame(true, opPing, []byte("hi"), true))
		peer.Write(frame(true, opBinary, nil, true))
	}()
	go io.Copy(io.Discard, peer)
	m, err := srv.Next()
	if m != nil || err != nil {
		t.Fatalf("after a ping: %q, %v; want nil, nil", m, err)
	}
	m, err = srv.Next()
	if m == nil || len(m) != 0 || err != nil {
		t.Fatalf("empty message: %v, %v", m, err)
	}
}

func TestServerFramesMustNotBeMasked(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cli := newConn(a, true, 100, nil, nil)
	go b.Write(frame(true, opBinary, []byte("x"), true))
	if _, err := cli.ReadMessage(); err == nil || !strings.Contains(err.Error(), "masked frame from the server") {
		t.Fatalf("got %v", err)
	}
}

func TestWaitIdle(t *testing.T) {
	srv, cli := pair(t)
	idle, err := srv.WaitIdle(20 * time.Millisecond)
	if !idle || err != nil || srv.br != nil {
		t.Fatalf("quiet connection: idle %v err %v (buffer kept: %v)", idle, err, srv.br != nil)
	}
	// Half a frame arrives: not idle, and the rest completes the message.
	f := frame(true, opBinary, []byte("after the pause"), true)
	if _, err := cli.nc.Write(f[:3]); err != nil {
		t.Fatal(err)
	}
	idle, err = srv.WaitIdle(5 * time.Second)
	if idle || err != nil {
		t.Fatalf("with data waiting: idle %v err %v", idle, err)
	}
	go cli.nc.Write(f[3:])
	got, err := srv.ReadMessage()
	if err != nil || string(got) != "after the pause" {
		t.Fatalf("got %q, %v", got, err)
	}
	cli.CloseNow()
	if idle, err := srv.WaitIdle(5 * time.Second); idle || err == nil {
		t.Fatalf("closed connection: idle %v err %v", idle, err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Accept(w, r, proto, 100)
	}))
	defer hs.Close()
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"plain GET", map[string]string{}, http.StatusUpgradeRequired},
		{"old version", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "8"}, http.StatusUpgradeRequired},
		{"bad key", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short", "Sec-WebSocket-Protocol": proto}, http.StatusBadRequest},
		{"no subprotocol", map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, http.StatusBadRequest},
		{"subprotocol in other case", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": strings.ToUpper(proto)}, http.StatusBadRequest},
		{"with a body", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": proto, "body": "\x82\x80xxxx"}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if b, ok := tt.header["body"]; ok {
				body = strings.NewReader(b)
				delete(tt.header, "body")
			}
			req, _ := http.NewRequest("GET", hs.URL, body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	// The RFC 6455 Section 1.3 example key.
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("acceptKey = %s", got)
	}
}

// TestInterop checks both sides against an independent implementation
// (github.com/coder/websocket).
func TestInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := make([]byte, 70000)
	rand.Read(msg)
	t.Run("their client, our server", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, proto, 1<<20)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				m, err := c.ReadMessage()
				if err != nil {
					return
				}
				c.WriteMessages(time.Now().Add(time.Second), m, m)
			}
		}))
		defer hs.Close()
		wc, _, err := websocket.Dial(ctx, hs.URL, &websocket.DialOptions{Subprotocols: []string{proto}})
		if err != nil {
			t.Fatal(err)
		}
		defer wc.CloseNow()
		wc.SetReadLimit(1 << 20)
		if err := wc.Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			_, got, err := wc.Read(ctx)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %d bytes, %v", len(got), err)
			}
		}
		if err := wc.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
	})
	t.Run("our client, their server", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{proto}})
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			_, m, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), websocket.MessageBinary, m)
			c.Close(websocket.StatusNormalClosure, "done")
		}))
		defer hs.Close()
		nc, err := net.Dial("tcp", hs.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := Client(nc, hs.Listener.Addr().String(), "/", proto, nil, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.WriteMessages(time.Now().Add(time.Second), msg); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
		var ce *CloseError
		if _, err := c.ReadMessage(); !errors.As(err, &ce) || ce.Code != StatusNormal || ce.Reason != "done" {
			t.Fatalf("close: %v", err)
		}
	})
}

func TestMask(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for n := range 40 {
		for pos := range 4 {
			p := make([]byte, n)
			rand.Read(p)
			want := bytes.Clone(p)
			for i := range want {
				want[i] ^= key[(pos+i)&3]
			}
			maskBytes(key, pos, p)
			if !bytes.Equal(p, want) {
				t.Fatalf("n=%d pos=%d", n, pos)
			}
		}
	}
}

// FuzzReadMessage feeds arbitrary bytes to a server's reader: it must
// return a message within the limit or an error, never panic or hang.
func FuzzReadMessage(f *testing.F) {
	f.Add(frame(true, opBinary, []byte("hello"), true))
	f.Add(append(frame(false, opBinary, []byte("a"), true), frame(true, opContinuation, []byte("b"), true)...))
	f.Add(frame(true, opPing, []byte("p"), true))
	f.Add(frame(true, opClose, []byte{3, 232, 'x'}, true))
	f.Add(binary.BigEndian.AppendUint64([]byte{0x82, 0xff}, 1<<40))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			b.Write(in)
			b.Close()
		}()
		go io.Copy(io.Discard, b)
		c := newConn(a, false, 4096, nil, nil)
		for {
			m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if len(m) > 4096 {
				t.Fatalf("message of %d bytes past the limit", len(m))
			}
		}
	})
}

// BenchmarkClientToServer measures framing, masking and unmasking of
// 1 KiB messages written 16 at a time over a pipe (no TLS).
func BenchmarkClientToServer(b *testing.B) {
	a, c := net.Pipe()
	defer a.Close()
	defer c.Close()
	cli := newConn(a, true, 1<<20, nil, nil)
	srv := newConn(c, false, 1<<20, nil, nil)
	msg := make([]byte, 1024)
	batch := make([][]byte, 16)
	for i := range batch {
		batch[i] = msg
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	go func() {
		for i := 0; i < b.N; i += len(batch) {
			n := min(len(batch), b.N-i)
			cli.WriteMessages(time.Now().Add(time.Minute), batch[:n]...)
		}
	}()
	for range b.N {
		if _, err := srv.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPingPayloadLimit: a ping's payload is at most 125 bytes (RFC 6455
// Section 5.5); a longer one is refused before anything is written.
func TestPingPayloadLimit(t *testing.T) {
	var c Conn // no connection: nothing may be written
	if err := c.Ping(make([]byte, 126)); err == nil {
		t.Fatal("a 126-byte ping payload was accepted")
	}
}

// TestLargeMessageInPieces: a message far larger than the reader's
// allocation step arrives whole, and a header that declares a large
// message reserves only one step until its bytes come.
func TestLargeMessageInPieces(t *testing.T) {
	srv, peer := rawServer(t, 1<<20)
	msg := make([]byte, 5*readStep+123)
	for i := range msg {
		msg[i] = byte(i)
	}
	go peer.Write(frame(true, opBinary, msg, true))
	got, err := srv.ReadMessage()
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, %v; want the %d sent", len(got), err, len(msg))
	}

	// A header for 1 MiB, then only 10 bytes: the reader waits with one
	// step allocated, not the declared size.
	f := frame(true, opBinary, make([]byte, 1<<20-16), true)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() {
		srv.ReadMessage()
		close(done)
	}()
	peer.Write(f[:14+10])
	time.Sleep(100 * time.Millisecond)
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*readStep {
		t.Errorf("a 1 MiB header with 10 bytes behind it made the reader allocate %d bytes", grew)
	}
	peer.Close()
	<-done
}
