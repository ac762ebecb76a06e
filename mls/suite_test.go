package mls

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSuitesRoundTrip exercises every implemented suite, including the
// post-quantum ones that the official vectors do not cover: key generation,
// serialization, deterministic derivation, signatures and HPKE.
func TestSuitesRoundTrip(t *testing.T) {
	if got := len(CipherSuites()); got != 13 {
		t.Fatalf("CipherSuites() has %d suites, want 13 (RFC 1-7 and 79-84)", got)
	}
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			sk, err := cs.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			sk2, err := cs.NewSignaturePrivateKey(sk.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sk2.PublicKey(), sk.PublicKey()) {
				t.Error("signature key does not survive Bytes/NewSignaturePrivateKey")
			}
			if err := cs.ValidateSignaturePublicKey(sk.PublicKey()); err != nil {
				t.Error(err)
			}
			sig, err := cs.SignWithLabel(sk, "L", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.VerifyWithLabel(sk.PublicKey(), "L", []byte("content"), sig); err != nil {
				t.Errorf("own signature: %v", err)
			}
			if err := cs.VerifyWithLabel(sk.PublicKey(), "L", []byte("content!"), sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("signature over other content: got %v, want ErrBadSignature", err)
			}

			ikm := bytes.Repeat([]byte{7}, cs.SecretSize())
			k1, err := cs.DeriveHPKEKey(ikm)
			if err != nil {
				t.Fatal(err)
			}
			k2, err := cs.DeriveHPKEKey(ikm)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k1.PublicKey(), k2.PublicKey()) {
				t.Error("DeriveHPKEKey is not deterministic")
			}
			raw, err := k1.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			k3, err := cs.NewHPKEPrivateKey(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k3.PublicKey(), k1.PublicKey()) {
				t.Error("HPKE key does not survive Bytes/NewHPKEPrivateKey")
			}
			if err := cs.ValidateHPKEPublicKey(k1.PublicKey()); err != nil {
				t.Error(err)
			}

			fresh, err := cs.GenerateHPKEKey()
			if err != nil {
				t.Fatal(err)
			}
			ct, err := cs.EncryptWithLabel(fresh.PublicKey(), "UpdatePathNode", []byte("ctx"), []byte("path secret"))
			if err != nil {
				t.Fatal(err)
			}
			pt, err := cs.DecryptWithLabel(fresh, "UpdatePathNode", []byte("ctx"), ct)
			if err != nil || string(pt) != "path secret" {
				t.Fatalf("DecryptWithLabel = %q, %v", pt, err)
			}
			if _, err := cs.DecryptWithLabel(fresh, "UpdatePathNode", []byte("other"), ct); err == nil {
				t.Error("DecryptWithLabel accepted another context")
			}
			if _, err := cs.DecryptWithLabel(k1, "UpdatePathNode", []byte("ctx"), ct); err == nil {
				t.Error("DecryptWithLabel accepted another key")
			}
		})
	}
}

// TestHPKECrossCheck opens EncryptWithLabel's output with crypto/hpke
// directly, with the EncryptContext of RFC 9420, Section 5.1.3 as info, so
// that the post-quantum suites are checked against an independent reading of
// the same construction.
func TestHPKECrossCheck(t *testing.T) {
	for _, cs := range CipherSuites() {
		p := cs.mustParams()
		kem := p.stdKEM()
		if kem == nil {
			continue // X448 lives in circl; the official vectors cover it
		}
		t.Run(cs.String(), func(t *testing.T) {
			priv, err := kem.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			ct, err := cs.EncryptWithLabel(priv.PublicKey().Bytes(), "Welcome", []byte("c"), []byte("secret"))
			if err != nil {
				t.Fatal(err)
			}
			info, err := labeledContent("Welcome", []byte("c"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := hpke.NewRecipient(ct.KEMOutput, priv, p.hpkeKDF(), p.hpkeAEAD(), info)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := r.Open(nil, ct.Ciphertext)
			if err != nil || string(pt) != "secret" {
				t.Fatalf("crypto/hpke Open = %q, %v", pt, err)
			}
		})
	}
}

func TestUnsupportedSuites(t *testing.T) {
	for _, c := range []struct {
		cs   CipherSuite
		want string
	}{
		{0, "unknown cipher suite 0 (0x0000)"},
		{0x0a0a, "unknown cipher suite 2570 (0x0a0a)"},
		{77, "cipher suite 77 (MLS_128_MLKEM512_AES128GCM_SHA256_Ed25519) is not supported"},
		{85, "cipher suite 85 (MLS_256_MLKEM1024_AES256GCM_SHA512_MLDSA87) is not supported"},
		{0x1234, "unknown cipher suite 4660 (0x1234)"},
	} {
		_, err := c.cs.GenerateSignatureKey()
		var ue *UnsupportedSuiteError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("suite %d: got %v, want an UnsupportedSuiteError containing %q", uint16(c.cs), err, c.want)
		}
		if c.cs.Supported() {
			t.Errorf("suite %d reported as supported", uint16(c.cs))
		}
	}
	if got := CipherSuite(0x2a2a).String(); got != "GREASE(0x2a2a)" {
		t.Errorf("String of a GREASE suite = %q", got)
	}
}

func TestGREASE(t *testing.T) {
	var n int
	for v := 0; v < 1<<16; v++ {
		if isGREASE(uint16(v)) {
			n++
			if want := fmt.Sprintf("%x%x", v>>12, 0xa); fmt.Sprintf("%04x", v)[:2] != want {
				t.Errorf("0x%04x is not of the form 0x?A?A", v)
			}
		}
	}
	if n != 15 {
		t.Errorf("%d GREASE values, want 15 (0x0A0A through 0xEAEA)", n)
	}
}
