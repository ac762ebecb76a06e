package mls

import (
	"fmt"
	"testing"
)

// benchSuites runs f as a sub-benchmark for every implemented suite.
func benchSuites(b *testing.B, f func(b *testing.B, cs CipherSuite)) {
	for _, cs := range CipherSuites() {
		b.Run(fmt.Sprintf("suite=%d", uint16(cs)), func(b *testing.B) { f(b, cs) })
	}
}

func BenchmarkSignWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		k, err := cs.GenerateSignatureKey()
		if err != nil {
			b.Fatal(err)
		}
		msg := make([]byte, 1024)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.SignWithLabel(k, "FramedContentTBS", msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		k, err := cs.GenerateSignatureKey()
		if err != nil {
			b.Fatal(err)
		}
		msg := make([]byte, 1024)
		sig, err := cs.SignWithLabel(k, "FramedContentTBS", msg)
		if err != nil {
			b.Fatal(err)
		}
		pub := k.PublicKey()
		b.ReportAllocs()
		for b.Loop() {
			if err := cs.VerifyWithLabel(pub, "FramedContentTBS", msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncryptWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		k, err := cs.GenerateHPKEKey()
		if err != nil {
			b.Fatal(err)
		}
		pub, pt := k.PublicKey(), make([]byte, 64)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.EncryptWithLabel(pub, "UpdatePathNode", nil, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecryptWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		k, err := cs.GenerateHPKEKey()
		if err != nil {
			b.Fatal(err)
		}
		ct, err := cs.EncryptWithLabel(k.PublicKey(), "UpdatePathNode", nil, make([]byte, 64))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.DecryptWithLabel(k, "UpdatePathNode", nil, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeriveHPKEKey(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		ikm := make([]byte, cs.SecretSize())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.DeriveHPKEKey(ikm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkExpandWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		secret := make([]byte, cs.SecretSize())
		b.ReportAllocs()
		for b.Loop() {
			cs.DeriveSecret(secret, "epoch")
		}
	})
}

// BenchmarkAEAD1KiB seals and opens 1 KiB, the AEAD share of protecting an
// application message.
func BenchmarkAEAD1KiB(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		key, nonce := make([]byte, cs.KeySize()), make([]byte, cs.NonceSize())
		pt := make([]byte, 1024)
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			aead, err := cs.newAEAD(key)
			if err != nil {
				b.Fatal(err)
			}
			ct := aead.Seal(nil, nonce, pt, nil)
			if _, err := aead.Open(nil, nonce, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProtectUnprotect1KiB signs, encrypts, decrypts and verifies one
// 1 KiB application message: the full cost of a message between members.
func BenchmarkProtectUnprotect1KiB(b *testing.B) {
	benchSuites(b, func(b *testing.B, cs CipherSuite) {
		pp := newProtectionPair(b, cs, 2)
		msg := make([]byte, 1024)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			got, err := pp.open(pp.sealApplication(b, 1, msg))
			if err != nil || len(got) != len(msg) {
				b.Fatal(err)
			}
		}
	})
}
