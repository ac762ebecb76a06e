package relaytest

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/ws"
)

// Fake serves WebSocket connections on a loopback port with a fresh,
// self-signed key, as a relay would, and hands each to handle, which
// plays the relay (misbehaving as the test needs). It returns the
// address clients dial, pinned to that key, and how many connections it
// accepted. The server stops when the test ends.
func Fake(t testing.TB, handle func(*ws.Conn)) (string, *atomic.Int32) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepts := new(atomic.Int32)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wc, err := ws.Accept(w, r, relay.Subprotocol, relay.MaxFrameSize)
		if err != nil {
			return
		}
		accepts.Add(1)
		handle(wc)
	})}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "tainik://" + relay.Fingerprint(cert) + "@" + ln.Addr().String(), accepts
}
