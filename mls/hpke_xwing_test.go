package mls

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestXWingDeriveKeyPair pins X-Wing's DeriveKeyPair to the output of
// ts-mls 1.6.4 (through @hpke/hybridkem-x-wing 0.7.0), the implementation
// whose code points the X-Wing suites use: the private key is
// SHAKE256(ikm, 32), as draft-connolly-cfrg-xwing-kem specifies X-Wing's
// use in HPKE. TreeKEM derives every parent node key this way (RFC 9420,
// Section 7.4), so with the draft-ietf-hpke-pq derivation of the standard
// library no commit with an UpdatePath interoperated. Found by the live
// interoperability tests in interop/.
func TestXWingDeriveKeyPair(t *testing.T) {
	ikm := make([]byte, 64)
	for i := range ikm {
		ikm[i] = byte(i)
	}
	const (
		wantPriv      = "755e8863a2b2bc067f51c1637a71c819d524dc37c17ba7a29c6ee3767c996a49"
		wantPubSHA256 = "534ca24d8d6e01bddf462876d102b0e734e9f4c308e02c45d142231b31be16fc"
	)
	for _, cs := range []CipherSuite{MLS_256_XWING_AES256GCM_SHA512_Ed25519, MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519} {
		k, err := cs.DeriveHPKEKey(ikm)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(priv); got != wantPriv {
			t.Errorf("%v: private key %s, want %s", cs, got, wantPriv)
		}
		pub := sha256.Sum256(k.PublicKey())
		if got := hex.EncodeToString(pub[:]); got != wantPubSHA256 {
			t.Errorf("%v: SHA-256 of public key %s, want %s", cs, got, wantPubSHA256)
		}
		// The derived key must round-trip through its serialization.
		k2, err := cs.NewHPKEPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k2.PublicKey(), k.PublicKey()) {
			t.Errorf("%v: public key changed through serialization", cs)
		}
	}
}
