package client

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tainik/tainik/relay/ws"
)

// pipeWS returns a client WebSocket over an in-memory pipe, and the server
// end, on which the test reads the raw frames.
func pipeWS(t *testing.T) (*ws.Conn, *bufio.Reader) {
	t.Helper()
	cn, sn := net.Pipe()
	t.Cleanup(func() { cn.Close(); sn.Close() })
	br := bufio.NewReader(sn)
	go func() {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(sn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(h[:]), req.Header.Get("Sec-WebSocket-Protocol"))
	}()
	c, err := ws.Client(cn, "relay.test", "/", "test", nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return c, br
}

// readFrame reads one masked client frame with a payload under 126 bytes.
func readFrame(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	var h [6]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] ^= h[2+i%4]
	}
	return p
}

// TestFrameWriterHandsOff: the request that writes for a busy connection
// returns after writing what was queued when it started; frames queued
// behind it are written by another goroutine, in order.
func TestFrameWriterHandsOff(t *testing.T) {
	c, br := pipeWS(t)
	fw := &frameWriter{w: c}
	first := make(chan error, 1)
	go func() { first <- fw.write([]byte("first")) }()
	// Wait until the first request is the writer and has taken the
	// queue: it is now blocked in the pipe until the test reads.
	for deadline := time.Now().Add(5 * time.Second); ; {
		fw.mu.Lock()
		writing := fw.active && len(fw.queue) == 0
		fw.mu.Unlock()
		if writing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first request never started writing")
		}
		time.Sleep(time.Millisecond)
	}
	for _, f := range []string{"second", "third"} {
		if err := fw.write([]byte(f)); err != nil {
			t.Fatalf("queueing %s: %v", f, err)
		}
	}
	if got := readFrame(t, br); string(got) != "first" {
		t.Fatalf("first frame %q", got)
	}
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first request is still writing frames queued after it")
	}
	var got [][]byte
	for range 2 {
		got = append(got, readFrame(t, br))
	}
	if !bytes.Equal(bytes.Join(got, []byte(",")), []byte("second,third")) {
		t.Fatalf("later frames %q", got)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		fw.mu.Lock()
		active := fw.active
		fw.mu.Unlock()
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer role was never given up")
		}
	}
}

// TestNewIDSkipsWaiting: after the request ids wrap, an id whose request
// still waits for its answer, and 0, are not handed out again.
func TestNewIDSkipsWaiting(t *testing.T) {
	waiting := map[uint32]chan result{1: make(chan result), 2: make(chan result), 4: make(chan result)}
	c := &Client{pending: waiting, nextID: math.MaxUint32 - 1}
	var got []uint32
	for range 3 {
		id := c.newID()
		c.pending[id] = make(chan result)
		got = append(got, id)
	}
	if want := []uint32{math.MaxUint32, 3, 5}; !slices.Equal(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
}
