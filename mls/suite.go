package mls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	circlhpke "github.com/cloudflare/circl/hpke"
	circlkem "github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/chacha20poly1305"
)

// CipherSuite is an MLS cipher suite code point. See RFC 9420, Section 5.1
// and the registry of Section 17.1.
type CipherSuite uint16

// The RFC 9420 cipher suites (Section 17.1) and the post-quantum suites of
// draft-ietf-mls-pq-ciphersuites, numbered as the independent implementation
// ts-mls 1.6.4 numbers them until IANA assigns values.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        CipherSuite = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             CipherSuite = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            CipherSuite = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             CipherSuite = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     CipherSuite = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             CipherSuite = 0x0007

	MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519         CipherSuite = 79
	MLS_256_MLKEM768_CHACHA20POLY1305_SHA384_Ed25519  CipherSuite = 80
	MLS_256_MLKEM1024_AES256GCM_SHA512_Ed25519        CipherSuite = 81
	MLS_256_MLKEM1024_CHACHA20POLY1305_SHA512_Ed25519 CipherSuite = 82
	MLS_256_XWING_AES256GCM_SHA512_Ed25519            CipherSuite = 83
	MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519     CipherSuite = 84
)

type kemID int

const (
	kemX25519 kemID = iota + 1
	kemP256
	kemP384
	kemP521
	kemX448
	kemMLKEM768
	kemMLKEM1024
	kemXWing
)

type aeadID int

const (
	aeadAES128GCM aeadID = iota + 1
	aeadAES256GCM
	aeadChaCha20Poly1305
)

// SignatureScheme names the TLS SignatureScheme of a suite (RFC 8446,
// Section 4.2.3), which is what MLS credentials and capabilities carry.
type SignatureScheme uint16

// The signature schemes the suites use.
const (
	ECDSA_SECP256R1_SHA256 SignatureScheme = 0x0403
	ECDSA_SECP384R1_SHA384 SignatureScheme = 0x0503
	ECDSA_SECP521R1_SHA512 SignatureScheme = 0x0603
	Ed25519                SignatureScheme = 0x0807
	Ed448                  SignatureScheme = 0x0808
)

// suiteParams is one row of the cipher suite table: every algorithm a suite
// is made of. Hash is the suite's hash (RefHash, transcript and tree hashes);
// KDF is the hash under HKDF for the key schedule, which differs from Hash
// only in the ts-mls numbering of the ML-KEM-768 suites.
type suiteParams struct {
	name string
	hash crypto.Hash
	kdf  crypto.Hash
	aead aeadID
	kem  kemID
	sig  SignatureScheme
}

// suites is the one table of cipher suite code points this package knows.
// A zero kem marks a suite that has a name but no implementation here.
var suites = map[CipherSuite]suiteParams{
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519:        {"MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", crypto.SHA256, crypto.SHA256, aeadAES128GCM, kemX25519, Ed25519},
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256:             {"MLS_128_DHKEMP256_AES128GCM_SHA256_P256", crypto.SHA256, crypto.SHA256, aeadAES128GCM, kemP256, ECDSA_SECP256R1_SHA256},
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519: {"MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", crypto.SHA256, crypto.SHA256, aeadChaCha20Poly1305, kemX25519, Ed25519},
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448:            {"MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", crypto.SHA512, crypto.SHA512, aeadAES256GCM, kemX448, Ed448},
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521:             {"MLS_256_DHKEMP521_AES256GCM_SHA512_P521", crypto.SHA512, crypto.SHA512, aeadAES256GCM, kemP521, ECDSA_SECP521R1_SHA512},
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448:     {"MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", crypto.SHA512, crypto.SHA512, aeadChaCha20Poly1305, kemX448, Ed448},
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384:             {"MLS_256_DHKEMP384_AES256GCM_SHA384_P384", crypto.SHA384, crypto.SHA384, aeadAES256GCM, kemP384, ECDSA_SECP384R1_SHA384},

	// ts-mls 1.6.4 pairs SHA-384 with HKDF-SHA512 in the ML-KEM-768 suites.
	MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519:         {"MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519", crypto.SHA384, crypto.SHA512, aeadAES256GCM, kemMLKEM768, Ed25519},
	MLS_256_MLKEM768_CHACHA20POLY1305_SHA384_Ed25519:  {"MLS_256_MLKEM768_CHACHA20POLY1305_SHA384_Ed25519", crypto.SHA384, crypto.SHA512, aeadChaCha20Poly1305, kemMLKEM768, Ed25519},
	MLS_256_MLKEM1024_AES256GCM_SHA512_Ed25519:        {"MLS_256_MLKEM1024_AES256GCM_SHA512_Ed25519", crypto.SHA512, crypto.SHA512, aeadAES256GCM, kemMLKEM1024, Ed25519},
	MLS_256_MLKEM1024_CHACHA20POLY1305_SHA512_Ed25519: {"MLS_256_MLKEM1024_CHACHA20POLY1305_SHA512_Ed25519", crypto.SHA512, crypto.SHA512, aeadChaCha20Poly1305, kemMLKEM1024, Ed25519},
	MLS_256_XWING_AES256GCM_SHA512_Ed25519:            {"MLS_256_XWING_AES256GCM_SHA512_Ed25519", crypto.SHA512, crypto.SHA512, aeadAES256GCM, kemXWing, Ed25519},
	MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519:     {"MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519", crypto.SHA512, crypto.SHA512, aeadChaCha20Poly1305, kemXWing, Ed25519},

	// Named so that a peer offering them gets a precise refusal: the Go
	// standard library has no ML-KEM-512, and ML-DSA is not yet supported.
	77: {name: "MLS_128_MLKEM512_AES128GCM_SHA256_Ed25519"},
	78: {name: "MLS_128_MLKEM512_CHACHA20POLY1305_SHA256_Ed25519"},
	85: {name: "MLS_256_MLKEM1024_AES256GCM_SHA512_MLDSA87"},
	86: {name: "MLS_256_MLKEM1024_CHACHA20POLY1305_SHA512_MLDSA87"},
	87: {name: "MLS_256_XWING_AES256GCM_SHA512_MLDSA87"},
	88: {name: "MLS_256_XWING_CHACHA20POLY1305_SHA512_MLDSA87"},
}

// CipherSuites returns every suite this package implements, in code point
// order.
func CipherSuites() []CipherSuite {
	var out []CipherSuite
	for cs := CipherSuite(1); cs < 256; cs++ {
		if cs.Supported() {
			out = append(out, cs)
		}
	}
	return out
}

// Supported reports whether this package implements the suite.
func (cs CipherSuite) Supported() bool {
	p, ok := suites[cs]
	return ok && p.kem != 0
}

func (cs CipherSuite) String() string {
	if p, ok := suites[cs]; ok {
		return p.name
	}
	if isGREASE(uint16(cs)) {
		return fmt.Sprintf("GREASE(0x%04x)", uint16(cs))
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(cs))
}

// UnsupportedSuiteError reports a cipher suite this package cannot use.
type UnsupportedSuiteError struct {
	Suite CipherSuite
}

func (e *UnsupportedSuiteError) Error() string {
	if _, named := suites[e.Suite]; named {
		return fmt.Sprintf("mls: cipher suite %d (%v) is not supported", uint16(e.Suite), e.Suite)
	}
	return fmt.Sprintf("mls: unknown cipher suite %d (0x%04x)", uint16(e.Suite), uint16(e.Suite))
}

// params returns the suite's algorithms, or an UnsupportedSuiteError.
func (cs CipherSuite) params() (suiteParams, error) {
	p, ok := suites[cs]
	if !ok || p.kem == 0 {
		return suiteParams{}, &UnsupportedSuiteError{cs}
	}
	return p, nil
}

// mustParams is params for callers that have already validated the suite,
// such as methods on a group that could only be created with a supported one.
func (cs CipherSuite) mustParams() suiteParams {
	p, err := cs.params()
	if err != nil {
		panic(err)
	}
	return p
}

// isGREASE reports whether v is one of the GREASE values of RFC 9420,
// Section 13.5: 0x0A0A, 0x1A1A, ..., 0xEAEA.
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>12 == (v>>4)&0xf && v != 0xfafa
}

// SignatureScheme returns the suite's signature scheme.
func (cs CipherSuite) SignatureScheme() SignatureScheme { return cs.mustParams().sig }

// HashSize returns the output size of the suite's hash, the size of
// references and tree hashes.
func (cs CipherSuite) HashSize() int { return cs.mustParams().hash.Size() }

// SecretSize returns Nh of the suite's KDF: the size of every epoch secret.
func (cs CipherSuite) SecretSize() int { return cs.mustParams().kdf.Size() }

// KeySize returns Nk, the AEAD key size.
func (cs CipherSuite) KeySize() int {
	if cs.mustParams().aead == aeadAES128GCM {
		return 16
	}
	return 32
}

// NonceSize returns Nn, the AEAD nonce size.
func (cs CipherSuite) NonceSize() int { return 12 }

func newHash(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	case crypto.SHA512:
		return sha512.New
	}
	panic("mls: hash not in the suite table")
}

// hash returns the suite's hash of data.
func (cs CipherSuite) hash(data []byte) []byte {
	h := newHash(cs.mustParams().hash)()
	h.Write(data)
	return h.Sum(nil)
}

// newAEAD returns the suite's AEAD under key, refusing a key of the wrong
// length.
func (cs CipherSuite) newAEAD(key []byte) (cipher.AEAD, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if len(key) != cs.KeySize() {
		return nil, fmt.Errorf("mls: AEAD key is %d bytes, suite %v needs %d", len(key), cs, cs.KeySize())
	}
	switch p.aead {
	case aeadAES128GCM, aeadAES256GCM:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	case aeadChaCha20Poly1305:
		return chacha20poly1305.New(key)
	}
	panic("mls: AEAD not in the suite table")
}

// hpkeAEAD and hpkeKDF give the HPKE components of the suite. The HPKE KDF is
// the one of the suite's KEM row in the table, which is HKDF over the suite's
// KDF hash.
func (p suiteParams) hpkeAEAD() hpke.AEAD {
	switch p.aead {
	case aeadAES128GCM:
		return hpke.AES128GCM()
	case aeadAES256GCM:
		return hpke.AES256GCM()
	}
	return hpke.ChaCha20Poly1305()
}

func (p suiteParams) hpkeKDF() hpke.KDF {
	switch p.kdf {
	case crypto.SHA256:
		return hpke.HKDFSHA256()
	case crypto.SHA384:
		return hpke.HKDFSHA384()
	}
	return hpke.HKDFSHA512()
}

// stdKEM returns the crypto/hpke KEM of the suite, or nil for X448, which the
// standard library lacks and circl provides.
func (p suiteParams) stdKEM() hpke.KEM {
	switch p.kem {
	case kemX25519:
		return hpke.DHKEM(ecdh.X25519())
	case kemP256:
		return hpke.DHKEM(ecdh.P256())
	case kemP384:
		return hpke.DHKEM(ecdh.P384())
	case kemP521:
		return hpke.DHKEM(ecdh.P521())
	case kemMLKEM768:
		return hpke.MLKEM768()
	case kemMLKEM1024:
		return hpke.MLKEM1024()
	case kemXWing:
		return hpke.MLKEM768X25519()
	}
	return nil
}

// circlSuite returns the circl HPKE suite for the X448 suites.
func (p suiteParams) circlSuite() circlhpke.Suite {
	aead := circlhpke.AEAD_AES256GCM
	if p.aead == aeadChaCha20Poly1305 {
		aead = circlhpke.AEAD_ChaCha20Poly1305
	}
	return circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, aead)
}

// circlX448 returns the DHKEM(X448, HKDF-SHA512) scheme.
func circlX448() circlkem.Scheme { return circlhpke.KEM_X448_HKDF_SHA512.Scheme() }
