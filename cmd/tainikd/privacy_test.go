package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"io/fs"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relayproc"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
)

// seal encrypts plaintext with AES-GCM under a key the relay never sees, as
// MLS would.
func seal(t *testing.T, key, plaintext []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, nil)
}

// TestPrivacy sends marker strings through every place a client can put
// them — inside client-side-encrypted payloads, log messages and blobs, and
// in the clear in the WebSocket handshake's headers — with the relay
// logging at debug level, and checks that no marker, and no client IP,
// appears in the relay's files or logs. It proves the relay adds no
// plaintext of its own: what it stores is what the client encrypted.
func TestPrivacy(t *testing.T) {
	bin := relayproc.Build(t, ".", "tainikd")
	dir := t.TempDir()
	p := relayproc.Start(t, bin, dir, "127.0.0.1:0", "-log-level", "debug")
	ctx := testContext(t, time.Minute)

	markers := map[string][]byte{
		"user agent":  []byte("MARKER-UA-7f3a9c"),
		"header":      []byte("MARKER-HEADER-51be02"),
		"queue":       []byte("MARKER-QUEUE-c0ffee"),
		"log":         []byte("MARKER-LOG-9d8e7f"),
		"blob":        []byte("MARKER-BLOB-a1b2c3"),
		"contact":     []byte("MARKER-CONTACT-4455aa"),
		"subprotocol": []byte("MARKER-PATH-deadbf"),
	}
	key := make([]byte, 16)
	rand.Read(key)
	h := http.Header{}
	h.Set("User-Agent", "tainik-test/"+string(markers["user agent"]))
	h.Set("X-Client-Note", string(markers["header"]))
	h.Set("Sec-WebSocket-Extensions", string(markers["subprotocol"]))
	c, err := client.Dial(ctx, p.Addr, client.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	q, err := c.CreateQueue(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := c.Send(ctx, q.SenderID, relay.MsgID{byte(i)}, seal(t, key, markers["queue"]), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Leave half unacknowledged, so ciphertext is certainly on disk.
	for i := range 10 {
		if err := c.Ack(ctx, q, relay.MsgID{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cq, _ := c.CreateQueue(ctx, true)
	if err := c.Send(ctx, cq.SenderID, relay.MsgID{1}, seal(t, key, markers["contact"]), nil); err != nil {
		t.Fatal(err)
	}
	gid := make([]byte, 16) // MLS group ids are random
	rand.Read(gid)
	l, err := c.CreateLog(ctx, gid, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, _, err := c.Append(ctx, l, mlsMessage(gid, 0, relay.ContentTypeApplication, seal(t, key, markers["log"]))); err != nil {
			t.Fatal(err)
		}
	}
	blob := bytes.Repeat(seal(t, key, markers["blob"]), 100)
	if _, err := c.Upload(ctx, client.Blob{}, blob); err != nil {
		t.Fatal(err)
	}
	// A control: a plaintext payload (which a real client never sends)
	// must be found, or the search proves nothing.
	control := []byte("CONTROL-PLAINTEXT-0a0b0c")
	if err := c.Send(ctx, q.SenderID, relay.MsgID{99}, control, nil); err != nil {
		t.Fatal(err)
	}
	// Provoke errors too: they are logged at debug level.
	c.Send(ctx, relay.ID{1}, relay.MsgID{1}, markers["queue"], nil)
	c.Append(ctx, l, markers["log"])

	c.Close()
	if err := p.Stop(t); err != nil {
		t.Fatalf("relay exit: %v", err)
	}
	logs := []byte(p.Stderr.String())
	if len(logs) == 0 {
		t.Fatal("no logs captured")
	}
	for name, m := range markers {
		if hits := relayproc.GrepTree(dir, m); len(hits) > 0 {
			t.Errorf("%s marker found in %v", name, hits)
		}
		if bytes.Contains(logs, m) {
			t.Errorf("%s marker found in the logs", name)
		}
	}
	if bytes.Contains(logs, []byte("127.0.0.1")) {
		t.Errorf("client address in the logs:\n%s", logs)
	}
	if hits := relayproc.GrepTree(dir, control); len(hits) == 0 {
		t.Fatal("control plaintext not found: the search does not work")
	}
	// Only the relay's user can read its files (operations.md).
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o077 != 0 && path != dir {
			t.Errorf("%s has mode %v", path, fi.Mode().Perm())
		}
		return nil
	})
}
