package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
	"github.com/tainik/tainik/relay/server"
)

// rawConn is a WebSocket to the relay without the client package, to send
// what a well-behaved client would not.
type rawConn struct {
	t     *testing.T
	ws    *websocket.Conn
	nonce []byte
}

func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	a, _ := relay.ParseAddress(addr)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+a.HostPort+relay.Path, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{relay.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(relay.MaxResponseSize)
	t.Cleanup(func() { ws.CloseNow() })
	r := &rawConn{t: t, ws: ws}
	_, m := r.read()
	r.nonce = m.(*relay.Hello).Nonce[:]
	return r
}

func (r *rawConn) write(frame []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.ws.Write(ctx, websocket.MessageBinary, frame); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) readErr() (uint32, relay.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, frame, err := r.ws.Read(ctx)
	if err != nil {
		return 0, nil, err
	}
	return relay.Decode(frame)
}

func (r *rawConn) read() (uint32, relay.Message) {
	r.t.Helper()
	id, m, err := r.readErr()
	if err != nil {
		r.t.Fatal(err)
	}
	return id, m
}

func (r *rawConn) wantError(id uint32, code relay.Code) {
	r.t.Helper()
	gotID, m := r.read()
	ef, ok := m.(*relay.ErrorFrame)
	if !ok || gotID != id || ef.Code != code {
		r.t.Fatalf("got %d %+v, want error %d for request %d", gotID, m, code, id)
	}
}

func (r *rawConn) wantClosed() {
	r.t.Helper()
	for {
		_, _, err := r.readErr()
		if err == nil {
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			r.t.Fatal("connection not closed")
		}
		return
	}
}

func (r *rawConn) createQueue() (relay.ID, ed25519.PrivateKey) {
	r.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	m := &relay.QueueCreate{}
	copy(m.RecipientKey[:], pub)
	relay.Sign(m, r.nonce, priv)
	r.write(relay.Encode(99, m))
	_, resp := r.read()
	qc, ok := resp.(*relay.QueueCreated)
	if !ok {
		r.t.Fatalf("QueueCreate: %+v", resp)
	}
	return qc.RecipientID, priv
}

func TestBadInput(t *testing.T) {
	r := startRelay(t, server.Config{MaxSubscriptions: 2})
	ctx := testCtx(t)

	t.Run("garbage", func(t *testing.T) {
		c := rawDial(t, r.addr)
		c.write([]byte("\x01GET / HTTP/1.1"))
		c.wantError(0, relay.CodeBadFrame)
		c.wantClosed()
	})
	t.Run("truncated", func(t *testing.T) {
		c := rawDial(t, r.addr)
		f := relay.Encode(5, &relay.LogRead{})
		c.write(f[:len(f)-1])
		c.wantError(5, relay.CodeBadFrame) // the id was read before the body
		c.wantClosed()
	})
	t.Run("version", func(t *testing.T) {
		c := rawDial(t, r.addr)
		f := relay.Encode(5, &relay.LogRead{})
		f[0] = 9
		c.write(f)
		c.wantError(0, relay.CodeUnsupportedVersion)
		c.wantClosed()
	})
	t.Run("unknown command keeps the connection", func(t *testing.T) {
		c := rawDial(t, r.addr)
		c.write([]byte{1, 0x7f, 0, 0, 0, 7, 0, 0, 0, 0})
		c.wantError(7, relay.CodeUnknownCommand)
		c.write(relay.Encode(8, &relay.OK{})) // a response type is not a request
		c.wantError(8, relay.CodeUnknownCommand)
		c.createQueue()
	})
	t.Run("oversized", func(t *testing.T) {
		c := rawDial(t, r.addr)
		c.ws.Write(ctx, websocket.MessageBinary, make([]byte, relay.MaxFrameSize+1))
		c.wantClosed()
	})
	t.Run("text frame", func(t *testing.T) {
		c := rawDial(t, r.addr)
		c.ws.Write(ctx, websocket.MessageText, []byte("hello"))
		c.wantClosed()
	})
	t.Run("unpadded", func(t *testing.T) {
		c := rawDial(t, r.addr)
		c.write(relay.Encode(3, &relay.QueueSend{Payload: []byte("short")}))
		c.wantError(3, relay.CodeBadPadding)
	})
	t.Run("replay on another connection", func(t *testing.T) {
		a, b := rawDial(t, r.addr), rawDial(t, r.addr)
		rid, key := a.createQueue()
		m := &relay.QueueReceive{}
		m.RecipientID = rid
		relay.Sign(m, a.nonce, key)
		a.write(relay.Encode(1, m))
		if _, resp := a.read(); resp.Type() != relay.TypeMessages {
			t.Fatalf("receive on the signing connection: %+v", resp)
		}
		b.write(relay.Encode(2, m))
		b.wantError(2, relay.CodeBadSignature)
	})
	t.Run("too many subscriptions", func(t *testing.T) {
		c := rawDial(t, r.addr)
		var tok relay.ID
		c.write(relay.Encode(1, &relay.LogCreate{GroupID: []byte("g"), TokenHash: sha256.Sum256(tok[:])}))
		_, resp := c.read()
		lid := resp.(*relay.LogCreated).LogID
		for i := range 2 {
			rid, key := c.createQueue()
			m := &relay.QueueSubscribe{}
			m.RecipientID = rid
			relay.Sign(m, c.nonce, key)
			c.write(relay.Encode(uint32(10+i), m))
			if _, resp := c.read(); resp.Type() != relay.TypeOK {
				t.Fatalf("subscribe %d: %+v", i, resp)
			}
		}
		c.write(relay.Encode(20, &relay.LogSubscribe{LogID: lid, Token: tok}))
		c.wantError(20, relay.CodeTooManySubscriptions)
	})
	t.Run("unknown identifiers", func(t *testing.T) {
		c := rawDial(t, r.addr)
		c.write(relay.Encode(1, &relay.LogRead{LogID: relay.ID{9}}))
		c.wantError(1, relay.CodeNotFound)
		c.write(relay.Encode(2, &relay.BlobGet{DownloadToken: relay.ID{9}}))
		c.wantError(2, relay.CodeNotFound)
		m := &relay.QueueAck{RecipientID: relay.ID{9}, MsgIDs: []relay.MsgID{{1}}}
		_, key, _ := ed25519.GenerateKey(nil)
		relay.Sign(m, c.nonce, key)
		c.write(relay.Encode(3, m))
		c.wantError(3, relay.CodeNotFound)
	})
}

func TestWrongSubprotocol(t *testing.T) {
	r := startRelay(t, server.Config{})
	a, _ := relay.ParseAddress(r.addr)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ctx := testCtx(t)
	ws, _, err := websocket.Dial(ctx, "wss://"+a.HostPort+relay.Path, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"chat"}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err == nil {
		t.Fatal("connection without the subprotocol was served")
	}
}

// TestFlood: a connection that sends requests faster than they are handled
// gets CodeTooManyRequests; the relay stays up for others.
func TestFlood(t *testing.T) {
	r := startRelay(t, server.Config{MaxInFlight: 2})
	ctx := testCtx(t)
	c := rawDial(t, r.addr)
	var tok relay.ID
	c.write(relay.Encode(1, &relay.LogCreate{GroupID: []byte("g"), TokenHash: sha256.Sum256(tok[:])}))
	_, resp := c.read()
	lid := resp.(*relay.LogCreated).LogID
	const n = 200
	for i := range n {
		c.write(relay.Encode(uint32(100+i), &relay.LogAppend{LogID: lid, Token: tok, Message: mlsMessage([]byte("g"), 0, relay.ContentTypeApplication)}))
	}
	limited := 0
	for range n {
		_, m := c.read()
		if ef, ok := m.(*relay.ErrorFrame); ok && ef.Code == relay.CodeTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("no request was refused with CodeTooManyRequests")
	}
	other := dial(t, r.addr)
	if _, err := other.CreateQueue(ctx, false); err != nil {
		t.Fatal(err)
	}
}

// TestSlowReader: a client that never reads is disconnected after the write
// timeout, and another client is served meanwhile.
func TestSlowReader(t *testing.T) {
	r := startRelay(t, server.Config{OutboundFrames: 4, WriteTimeout: time.Second})
	ctx := testCtx(t)
	writer := dial(t, r.addr)
	gid := []byte("g")
	l, err := writer.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := append(mlsMessage(gid, 0, relay.ContentTypeApplication), make([]byte, 60_000)...)
	for range 250 { // ~15 MB: more than the socket buffers hold
		_, _, err := writer.Append(ctx, l, big)
		if errors.Is(err, client.ErrDisconnected) {
			// Under load on two cores the relay can be slow enough for
			// the client to reconnect; the append is retried, as any
			// client would.
			_, _, err = writer.Append(ctx, l, big)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	slow := rawDial(t, r.addr)
	slow.write(relay.Encode(1, &relay.LogSubscribe{LogID: l.ID, Token: l.Token}))
	// Never read from slow. Meanwhile another client works normally.
	start := time.Now()
	if _, err := writer.CreateQueue(ctx, false); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("other client slowed down: %v", d)
	}
	a, _ := relay.ParseAddress(r.addr)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get("https://" + a.HostPort + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(body, []byte("tainik_relay_slow_clients_closed_total 0\n")) && strings.Contains(string(body), "tainik_relay_slow_clients_closed_total") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slow reader was not disconnected")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// TestResponseTypeAsRequest: a frame of a type the relay sends (a
// response, a push) is answered with unknown_command and the connection
// stays open, whatever its body.
func TestResponseTypeAsRequest(t *testing.T) {
	r := startRelay(t, server.Config{})
	for _, typ := range []byte{byte(relay.TypeHello), byte(relay.TypeError), byte(relay.TypeLogPush)} {
		c := rawDial(t, r.addr)
		c.write([]byte{1, typ, 0, 0, 0, 7, 0, 0, 0, 0}) // version 1, type, id 7, empty body
		id, m, err := c.readErr()
		if err != nil {
			t.Fatalf("type %#x: %v", typ, err)
		}
		ef, _ := m.(*relay.ErrorFrame)
		if ef == nil || ef.Code != relay.CodeUnknownCommand {
			t.Errorf("type %#x: got id %d %+v, want unknown_command (3) for request 7 and the connection kept", typ, id, m)
		}
	}
}
