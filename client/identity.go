package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/tainik/tainik/mls"
)

// suite is the MLS cipher suite of every group:
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
const suite = mls.CipherSuite(1)

const deviceLabel = "tainik device key v1\x00"

// deviceCredential is the identity of a device's MLS basic credential: the
// user's long-term Ed25519 identity key and its signature over the device's
// MLS signature key. So every leaf of a group names a user, and only the
// holder of the identity key can add devices to it.
func deviceCredential(identity ed25519.PrivateKey, deviceSigPub []byte) mls.Credential {
	msg := append([]byte(deviceLabel), deviceSigPub...)
	id := append(bytes.Clone(identity.Public().(ed25519.PublicKey)), ed25519.Sign(identity, msg)...)
	return mls.Credential{Type: mls.CredentialBasic, Identity: id}
}

// credentialIdentity checks that cred binds signatureKey to an identity key
// and returns that key.
func credentialIdentity(cred *mls.Credential, signatureKey []byte) (ed25519.PublicKey, error) {
	if cred.Type != mls.CredentialBasic {
		return nil, errors.New("client: credential is not a basic credential")
	}
	if len(cred.Identity) != ed25519.PublicKeySize+ed25519.SignatureSize {
		return nil, errors.New("client: credential identity has the wrong length")
	}
	pub := ed25519.PublicKey(bytes.Clone(cred.Identity[:ed25519.PublicKeySize]))
	msg := append([]byte(deviceLabel), signatureKey...)
	if !ed25519.Verify(pub, msg, cred.Identity[ed25519.PublicKeySize:]) {
		return nil, errors.New("client: credential does not bind the device key to its identity key")
	}
	return pub, nil
}

// validateCredential is the mls.CredentialValidator of every group.
func validateCredential(cs mls.CipherSuite, cred *mls.Credential, signatureKey []byte) error {
	_, err := credentialIdentity(cred, signatureKey)
	return err
}

// mlsConfig hides handshake messages and pads every message, so that the
// relay sees neither credentials nor exact lengths.
var mlsConfig = mls.Config{ValidateCredential: validateCredential, UsePrivateHandshake: true, PaddingBlock: 256}

// SafetyNumber returns the 60-digit safety number of two identity keys,
// the same whichever side computes it: 30 digits per key, from 5200
// iterations of SHA-512, the keys in sorted order.
func SafetyNumber(a, b ed25519.PublicKey) string {
	fa, fb := keyDigits(a), keyDigits(b)
	if bytes.Compare(a, b) > 0 {
		fa, fb = fb, fa
	}
	return fa + fb
}

func keyDigits(key ed25519.PublicKey) string {
	h := append([]byte{0, 0}, key...)
	h = append(h, "tainik safety number"...)
	for range 5200 {
		s := sha512.Sum512(append(h, key...))
		h = s[:]
	}
	var sb strings.Builder
	for i := range 6 {
		chunk := h[i*5 : i*5+5]
		v := uint64(chunk[0])<<32 | uint64(binary.BigEndian.Uint32(chunk[1:]))
		fmt.Fprintf(&sb, "%05d", v%100000)
	}
	return sb.String()
}

// FormatSafetyNumber groups a safety number in blocks of five digits.
func FormatSafetyNumber(n string) string {
	var parts []string
	for i := 0; i < len(n); i += 5 {
		parts = append(parts, n[i:min(i+5, len(n))])
	}
	return strings.Join(parts, " ")
}
