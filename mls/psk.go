package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// pskWithSecret is one PSK to inject into the key schedule: its
// PreSharedKeyID as listed in the Commit or GroupSecrets, and the PSK value
// the ID names (an external PSK from the application, or the resumption_psk
// of the named group and epoch).
type pskWithSecret struct {
	ID  PreSharedKeyID
	PSK []byte
}

// pskSecret combines the PSKs, in the order listed, into psk_secret. With
// no PSKs, psk_secret is KDF.Nh zero bytes. See RFC 9420, Section 8.4.
func pskSecret(cs CipherSuite, psks []pskWithSecret) ([]byte, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("mls: %d PSKs do not fit a PSKLabel count", len(psks))
	}
	zero := cs.zeroSecret()
	secret := cs.zeroSecret()
	for i := range psks {
		// PSKLabel: struct { PreSharedKeyID id; uint16 index; uint16 count; }
		label, err := marshal(func(b *cryptobyte.Builder) {
			psks[i].ID.marshal(b)
			b.AddUint16(uint16(i))
			b.AddUint16(uint16(len(psks)))
		})
		if err != nil {
			return nil, err
		}
		extracted := cs.Extract(zero, psks[i].PSK)
		input, err := cs.ExpandWithLabel(extracted, "derived psk", label, cs.SecretSize())
		clear(extracted)
		if err != nil {
			return nil, err
		}
		next := cs.Extract(input, secret)
		clear(input)
		clear(secret)
		secret = next
	}
	return secret, nil
}
