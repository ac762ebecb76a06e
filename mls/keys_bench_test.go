package mls

import (
	"bytes"
	"testing"
)

var keyBenchSuites = []CipherSuite{
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
	MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519,
}

// BenchmarkKeySchedule derives one epoch: joiner_secret, welcome_secret,
// epoch_secret and every secret of the epoch.
func BenchmarkKeySchedule(b *testing.B) {
	for _, cs := range keyBenchSuites {
		b.Run(cs.String(), func(b *testing.B) {
			gc := &GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: []byte("group"), Epoch: 1,
				TreeHash: make([]byte, cs.HashSize()), ConfirmedTranscriptHash: make([]byte, cs.HashSize())}
			gcBytes, err := gc.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			init := newInitSecret(cs, bytes.Repeat([]byte{1}, cs.SecretSize()))
			commitSecret := bytes.Repeat([]byte{2}, cs.SecretSize())
			b.ReportAllocs()
			for b.Loop() {
				joiner, err := init.joiner(commitSecret, gcBytes)
				if err != nil {
					b.Fatal(err)
				}
				mid := joiner.withPSK(nil)
				mid.welcome()
				epoch, err := mid.epoch(gcBytes)
				if err != nil {
					b.Fatal(err)
				}
				init = epoch.nextInit()
			}
		})
	}
}

// BenchmarkSecretTreeNext is the sender's cost per application message.
func BenchmarkSecretTreeNext(b *testing.B) {
	for _, cs := range keyBenchSuites {
		b.Run(cs.String(), func(b *testing.B) {
			tree := newSecretTree(cs, bytes.Repeat([]byte{3}, cs.SecretSize()), 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tree.next(17, ratchetApplication); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSenderDataKeyNonce is the per-message cost of the sender data
// key and nonce.
func BenchmarkSenderDataKeyNonce(b *testing.B) {
	for _, cs := range keyBenchSuites {
		b.Run(cs.String(), func(b *testing.B) {
			secret := bytes.Repeat([]byte{4}, cs.SecretSize())
			ct := bytes.Repeat([]byte{5}, 1024)
			b.SetBytes(int64(cs.SecretSize()))
			b.ReportAllocs()
			for b.Loop() {
				senderDataKeyNonce(cs, secret, ct)
			}
		})
	}
}
