package mls

import (
	"bytes"
	"fmt"
	"testing"
)

// TestExternalPubEncoding pins the external_pub GroupInfo extension to
// RFC 9420, Section 12.4.3.2: its extension_data is the struct ExternalPub
// { HPKEPublicKey external_pub; }, so the key carries its own opaque<V>
// length prefix inside extension_data. ts-mls 1.6.4 writes and reads the
// bare key instead (fixed upstream after 1.6.4); the live interoperability
// tests in interop/ found the disagreement. The Go side must keep the RFC
// encoding and refuse the bare one.
func TestExternalPubEncoding(t *testing.T) {
	for _, cs := range []CipherSuite{
		MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519,
	} {
		t.Run(fmt.Sprint(cs), func(t *testing.T) {
			alice := newTestClient(t, cs, "alice")
			kp, sec := alice.keyPackage(t)
			g, err := NewGroup(testConfig(), []byte("group"), kp, sec, alice.sigKey, nil)
			if err != nil {
				t.Fatal(err)
			}
			gi, err := g.GroupInfo(true)
			if err != nil {
				t.Fatal(err)
			}
			data, ok := gi.Extensions.Find(ExtensionExternalPub)
			if !ok {
				t.Fatal("GroupInfo has no external_pub extension")
			}
			ep, err := UnmarshalExternalPub(data)
			if err != nil {
				t.Fatalf("external_pub is not an ExternalPub struct: %v", err)
			}
			if err := cs.ValidateHPKEPublicKey(ep.ExternalPub); err != nil {
				t.Fatalf("external_pub key: %v", err)
			}
			// extension_data = opaque<V> prefix || key, nothing else.
			want, err := ep.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, want) || len(data) <= len(ep.ExternalPub) {
				t.Fatalf("external_pub extension_data is %d bytes for a %d-byte key, want the key with its length prefix", len(data), len(ep.ExternalPub))
			}
			// A bare key, as ts-mls 1.6.4 sends it, is not an ExternalPub.
			bare, err := cs.DeriveHPKEKey(bytes.Repeat([]byte{7}, cs.SecretSize()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := UnmarshalExternalPub(bare.PublicKey()); err == nil {
				t.Error("a bare key was accepted as an ExternalPub struct")
			}
		})
	}
}
