package mls

import (
	"bytes"
	"crypto/hmac"
	"testing"
)

func testGroupContext(t *testing.T, cs CipherSuite, epoch uint64) []byte {
	t.Helper()
	gc := &GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             cs,
		GroupID:                 []byte("group"),
		Epoch:                   epoch,
		TreeHash:                bytes.Repeat([]byte{1}, cs.HashSize()),
		ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, cs.HashSize()),
	}
	b, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyScheduleWelcome checks that a member joining by Welcome, from the
// joiner_secret alone, reaches the same epoch as the committer, and that
// welcome_key and welcome_nonce have the suite's sizes.
func TestKeyScheduleWelcome(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			init, err := newRandomInitSecret(cs)
			if err != nil {
				t.Fatal(err)
			}
			gc := testGroupContext(t, cs, 1)
			commitSecret := bytes.Repeat([]byte{3}, cs.SecretSize())
			joiner, err := init.joiner(commitSecret, gc)
			if err != nil {
				t.Fatal(err)
			}
			psk := bytes.Repeat([]byte{4}, cs.SecretSize())
			mid := joiner.withPSK(psk)
			committer, err := mid.epoch(gc)
			if err != nil {
				t.Fatal(err)
			}
			received, err := newJoinerSecret(cs, joiner.bytes())
			if err != nil {
				t.Fatal(err)
			}
			joined, err := received.withPSK(psk).epoch(gc)
			if err != nil {
				t.Fatal(err)
			}
			if !hmac.Equal(committer.EpochAuthenticator(), joined.EpochAuthenticator()) {
				t.Error("joiner and committer disagree on the epoch_authenticator")
			}
			other, err := received.withPSK(nil).epoch(gc)
			if err != nil {
				t.Fatal(err)
			}
			if hmac.Equal(committer.EpochAuthenticator(), other.EpochAuthenticator()) {
				t.Error("psk_secret did not change the epoch")
			}
			key, nonce := mid.welcome().keyNonce()
			if len(key) != cs.KeySize() || len(nonce) != cs.NonceSize() {
				t.Errorf("welcome key/nonce are %d/%d bytes, want %d/%d", len(key), len(nonce), cs.KeySize(), cs.NonceSize())
			}
			if _, err := newJoinerSecret(cs, []byte{1, 2, 3}); err == nil {
				t.Error("newJoinerSecret accepted a short secret")
			}
			out, err := committer.Export("label", []byte("context"), 42)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 42 {
				t.Errorf("Export returned %d bytes, want 42", len(out))
			}
		})
	}
}

// TestKeyScheduleCopies checks that the stages copy the secrets they are
// given, so that a caller clearing its buffer does not change the schedule.
func TestKeyScheduleCopies(t *testing.T) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	buf := bytes.Repeat([]byte{7}, cs.SecretSize())
	init := newInitSecret(cs, buf)
	js, err := newJoinerSecret(cs, buf)
	if err != nil {
		t.Fatal(err)
	}
	clear(buf)
	if init.secret[0] != 7 || js.secret[0] != 7 {
		t.Error("a key schedule stage shares its caller's buffer")
	}
}

// TestExternalInit round-trips external initialization in every suite:
// the joiner's init_secret is the one the group recovers from kem_output.
// See RFC 9420, Section 8.3.
func TestExternalInit(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			init, err := newRandomInitSecret(cs)
			if err != nil {
				t.Fatal(err)
			}
			gc := testGroupContext(t, cs, 0)
			joiner, err := init.joiner(nil, gc)
			if err != nil {
				t.Fatal(err)
			}
			epoch, err := joiner.withPSK(nil).epoch(gc)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := epoch.ExternalPub()
			if err != nil {
				t.Fatal(err)
			}
			kemOutput, sent, err := cs.externalInit(pub)
			if err != nil {
				t.Fatal(err)
			}
			if len(sent.secret) != cs.SecretSize() {
				t.Errorf("init_secret is %d bytes, want %d", len(sent.secret), cs.SecretSize())
			}
			priv, err := epoch.externalKey()
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.externalInitSecret(priv, kemOutput)
			if err != nil {
				t.Fatal(err)
			}
			if !hmac.Equal(got.secret, sent.secret) {
				t.Error("group and joiner derived different init_secrets")
			}
			other, err := cs.GenerateHPKEKey()
			if err != nil {
				t.Fatal(err)
			}
			if wrong, err := cs.externalInitSecret(other, kemOutput); err == nil && hmac.Equal(wrong.secret, sent.secret) {
				t.Error("another private key recovered the init_secret")
			}
			if _, _, err := cs.externalInit([]byte{1, 2, 3}); err == nil {
				t.Error("externalInit accepted an invalid external_pub")
			}
		})
	}
}

// TestDeriveHPKEKeyLengths checks that DeriveHPKEKey takes secrets of any
// suite's KDF.Nh, as the key schedule and TreeKEM pass them.
func TestDeriveHPKEKeyLengths(t *testing.T) {
	for _, cs := range CipherSuites() {
		for _, n := range []int{32, 48, 56, 64} {
			a, err := cs.DeriveHPKEKey(bytes.Repeat([]byte{9}, n))
			if err != nil {
				t.Fatalf("%v, %d bytes: %v", cs, n, err)
			}
			b, err := cs.DeriveHPKEKey(bytes.Repeat([]byte{9}, n))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.PublicKey(), b.PublicKey()) {
				t.Errorf("%v: DeriveHPKEKey is not deterministic", cs)
			}
		}
	}
}

func TestPSKSecretEmpty(t *testing.T) {
	cs := MLS_256_DHKEMP521_AES256GCM_SHA512_P521
	got, err := pskSecret(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, 64)) {
		t.Errorf("psk_secret of no PSKs: got %x, want 64 zero bytes", got)
	}
	id := PreSharedKeyID{Type: PSKExternal, ID: []byte("a"), Nonce: make([]byte, 64)}
	one, err := pskSecret(cs, []pskWithSecret{{id, []byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	two, err := pskSecret(cs, []pskWithSecret{{id, []byte("k")}, {id, []byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(one, two) || bytes.Equal(one, got) {
		t.Error("psk_secret does not depend on the list of PSKs")
	}
	if _, err := pskSecret(cs, []pskWithSecret{{PreSharedKeyID{Type: 9}, nil}}); err == nil {
		t.Error("pskSecret accepted an unknown PSK type")
	}
}

// TestDeriveX448MatchesCircl checks the X448 DeriveKeyPair against circl's
// for the one ikm length circl accepts.
func TestDeriveX448MatchesCircl(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x42}, 56)
	sk, err := deriveX448PrivateKey(ikm)
	if err != nil {
		t.Fatal(err)
	}
	_, want := circlX448().DeriveKeyPair(ikm)
	wantBytes, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk, wantBytes) {
		t.Errorf("X448 DeriveKeyPair: got %x, want %x", sk, wantBytes)
	}
}
