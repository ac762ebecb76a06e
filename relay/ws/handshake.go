package ws

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// HandshakeError is a refused opening handshake. Status is the HTTP
// status the server answered (or answers) with.
type HandshakeError struct {
	Status  int
	Message string
}

func (e *HandshakeError) Error() string { return "ws: handshake: " + e.Message }

// Accept completes the server side of the opening handshake, RFC 6455
// Section 4.2, for the one subprotocol the server speaks. A request that
// is not a WebSocket upgrade, or does not offer subprotocol, is answered
// with an HTTP error and Accept returns a *HandshakeError. No extension
// is ever accepted. limit bounds a message from the client.
//
// The browser's Origin header is not checked: the relay has no cookies
// or other ambient authority for a foreign page to borrow.
func Accept(w http.ResponseWriter, r *http.Request, subprotocol string, limit int) (*Conn, error) {
	if err := checkUpgrade(r, subprotocol); err != nil {
		var he *HandshakeError
		errors.As(err, &he)
		if he.Status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, he.Message, he.Status)
		return nil, err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "websocket not supported on this connection", http.StatusInternalServerError)
		return nil, &HandshakeError{http.StatusInternalServerError, "connection cannot be taken over"}
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("ws: taking over the connection: %w", err)
	}
	// A client may send its first frames right behind the request; keep
	// what the HTTP server already read.
	var pre []byte
	if n := brw.Reader.Buffered(); n > 0 {
		pre, _ = brw.Reader.Peek(n)
		pre = append([]byte(nil), pre...)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n" +
		"Sec-WebSocket-Protocol: " + subprotocol + "\r\n\r\n"
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("ws: answering the handshake: %w", err)
	}
	return newConn(nc, false, limit, pre, nil), nil
}

func checkUpgrade(r *http.Request, subprotocol string) error {
	switch {
	case r.Method != http.MethodGet:
		return &HandshakeError{http.StatusMethodNotAllowed, "a WebSocket handshake is a GET request"}
	case !r.ProtoAtLeast(1, 1):
		return &HandshakeError{http.StatusBadRequest, "a WebSocket handshake needs HTTP/1.1"}
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return &HandshakeError{http.StatusUpgradeRequired, "this endpoint speaks WebSocket only"}
	case len(r.Header.Values("Sec-WebSocket-Version")) != 1 || r.Header.Get("Sec-WebSocket-Version") != "13":
		return &HandshakeError{http.StatusUpgradeRequired, "WebSocket version 13 required"}
	case r.ContentLength != 0 || len(r.TransferEncoding) > 0:
		// Its body would be read as the first WebSocket frames.
		return &HandshakeError{http.StatusBadRequest, "a WebSocket handshake has no body"}
	case len(r.Header.Values("Sec-WebSocket-Key")) != 1:
		return &HandshakeError{http.StatusBadRequest, "missing or repeated Sec-WebSocket-Key"}
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return &HandshakeError{http.StatusBadRequest, "missing or malformed Sec-WebSocket-Key"}
	}
	if !headerHasExactToken(r.Header, "Sec-WebSocket-Protocol", subprotocol) {
		return &HandshakeError{http.StatusBadRequest, "subprotocol " + subprotocol + " required"}
	}
	return nil
}

// headerHasExactToken reports whether a comma-separated header lists
// token exactly: subprotocol names are case-sensitive (RFC 6455 Section
// 4.1), and the client compares the answer exactly.
func headerHasExactToken(h http.Header, name, token string) bool {
	return headerLists(h, name, func(t string) bool { return t == token })
}

// headerHasToken reports whether a comma-separated header lists token
// (case-insensitively).
func headerHasToken(h http.Header, name, token string) bool {
	return headerLists(h, name, func(t string) bool { return strings.EqualFold(t, token) })
}

// headerLists reports whether a comma-separated header lists a token
// that match accepts.
func headerLists(h http.Header, name string, match func(string) bool) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if match(strings.TrimSpace(t)) {
				return true
			}
		}
	}
	return false
}

// Client performs the client side of the opening handshake, RFC 6455
// Section 4.1, over an established connection (TLS for the relay) and
// returns the WebSocket. host and path form the request target; header
// adds request headers. limit bounds a message from the server.
func Client(nc net.Conn, host, path, subprotocol string, header http.Header, limit int) (*Conn, error) {
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req, err := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return nil, fmt.Errorf("ws: building the handshake: %w", err)
	}
	for name, vs := range header {
		req.Header[name] = append([]string(nil), vs...)
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Protocol", subprotocol)
	if err := req.Write(nc); err != nil {
		return nil, fmt.Errorf("ws: sending the handshake: %w", err)
	}
	// The answer's headers are bounded; bytes read past them (frames
	// the server sent at once) are kept for the connection.
	lr := &io.LimitedReader{R: nc, N: maxHandshakeAnswer}
	br := bufio.NewReaderSize(lr, readBufferSize)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lr.N == 0 {
			return nil, fmt.Errorf("ws: the server's handshake answer is longer than %d bytes", maxHandshakeAnswer)
		}
		return nil, fmt.Errorf("ws: reading the handshake answer: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, &HandshakeError{resp.StatusCode, "server answered " + resp.Status}
	case !headerHasToken(resp.Header, "Upgrade", "websocket") || !headerHasToken(resp.Header, "Connection", "upgrade"):
		return nil, &HandshakeError{resp.StatusCode, "server did not upgrade to WebSocket"}
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key):
		return nil, &HandshakeError{resp.StatusCode, "server's Sec-WebSocket-Accept does not match"}
	case resp.Header.Get("Sec-WebSocket-Protocol") != subprotocol:
		return nil, &HandshakeError{resp.StatusCode, "server did not agree to subprotocol " + subprotocol}
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return nil, &HandshakeError{resp.StatusCode, "server chose an extension that was not offered"}
	}
	var pre []byte
	if n := br.Buffered(); n > 0 {
		pre, _ = br.Peek(n)
		pre = append([]byte(nil), pre...)
	}
	return newConn(nc, true, limit, pre, nil), nil
}

// maxHandshakeAnswer bounds the server's answer to the opening handshake.
const maxHandshakeAnswer = 16 << 10
