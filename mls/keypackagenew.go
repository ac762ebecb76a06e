package mls

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// DefaultKeyPackageLifetime is how long a KeyPackage made by NewKeyPackage
// stays valid when KeyPackageOptions.Lifetime is zero.
const DefaultKeyPackageLifetime = 90 * 24 * time.Hour

// keyPackageClockSkew is how far before its creation a new KeyPackage's
// not_before is set, so that a receiver whose clock runs behind the
// creator's does not reject it as not yet valid.
const keyPackageClockSkew = time.Hour

// KeyPackageOptions tunes NewKeyPackage. The zero value is a sensible
// default.
type KeyPackageOptions struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Lifetime is how long after creation the KeyPackage expires; zero means
	// DefaultKeyPackageLifetime.
	Lifetime time.Duration
	// LeafExtensions and Extensions are added to the leaf node and to the
	// KeyPackage. Their non-default types are listed in the capabilities.
	LeafExtensions Extensions
	Extensions     Extensions
}

// KeyPackageSecrets is the private half of a KeyPackage, which the client
// keeps until the KeyPackage is used in a Welcome or expires.
type KeyPackageSecrets struct {
	CipherSuite CipherSuite
	// Ref is the KeyPackageRef, by which a Welcome names the KeyPackage.
	Ref []byte
	// InitKey decrypts the GroupSecrets of a Welcome; delete it once used.
	InitKey *HPKEPrivateKey
	// EncryptionKey is the private key of the leaf node's encryption_key.
	EncryptionKey *HPKEPrivateKey
	// SignatureKey is the public signature key of the leaf node: a reference
	// to the long-term signing key, which is stored apart.
	SignatureKey []byte
}

// Bytes encodes the secrets for the client's encrypted store.
// ParseKeyPackageSecrets reverses it.
func (s *KeyPackageSecrets) Bytes() ([]byte, error) {
	initKey, err := s.InitKey.Bytes()
	if err != nil {
		return nil, err
	}
	defer clear(initKey)
	encKey, err := s.EncryptionKey.Bytes()
	if err != nil {
		return nil, err
	}
	defer clear(encKey)
	return marshal(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(s.CipherSuite))
		addOpaque(b, s.Ref)
		addOpaque(b, initKey)
		addOpaque(b, encKey)
		addOpaque(b, s.SignatureKey)
	})
}

// ParseKeyPackageSecrets decodes what KeyPackageSecrets.Bytes wrote.
func ParseKeyPackageSecrets(data []byte) (*KeyPackageSecrets, error) {
	s := new(KeyPackageSecrets)
	var initKey, encKey []byte
	err := unmarshal(data, "KeyPackageSecrets", func(in *cryptobyte.String) bool {
		return in.ReadUint16((*uint16)(&s.CipherSuite)) &&
			readOpaqueCopy(in, &s.Ref) &&
			readOpaqueCopy(in, &initKey) &&
			readOpaqueCopy(in, &encKey) &&
			readOpaqueCopy(in, &s.SignatureKey)
	})
	defer clear(initKey)
	defer clear(encKey)
	if err != nil {
		return nil, err
	}
	if s.InitKey, err = s.CipherSuite.NewHPKEPrivateKey(initKey); err != nil {
		return nil, err
	}
	if s.EncryptionKey, err = s.CipherSuite.NewHPKEPrivateKey(encKey); err != nil {
		return nil, err
	}
	return s, nil
}

// greaseValues are the GREASE code points of RFC 9420, Section 13.5.
var greaseValues = [...]uint16{
	0x0A0A, 0x1A1A, 0x2A2A, 0x3A3A, 0x4A4A, 0x5A5A, 0x6A6A, 0x7A7A,
	0x8A8A, 0x9A9A, 0xAAAA, 0xBABA, 0xCACA, 0xDADA, 0xEAEA,
}

func randomInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic("mls: crypto/rand failed: " + err.Error())
	}
	return int(v.Int64())
}

func randomGREASE() uint16 { return greaseValues[randomInt(len(greaseValues))] }

// insertGREASE inserts one random GREASE value at a random position of v.
func insertGREASE[T ~uint16](v []T) []T {
	i := randomInt(len(v) + 1)
	out := make([]T, 0, len(v)+1)
	out = append(out, v[:i]...)
	out = append(out, T(randomGREASE()))
	return append(out, v[i:]...)
}

// greaseExtension returns an extension of type t with 0 to 15 random bytes.
func greaseExtension(t ExtensionType) Extension {
	data := make([]byte, randomInt(16))
	rand.Read(data)
	return Extension{Type: t, Data: data}
}

// isDefaultExtension reports whether t is one of the extension types that
// every client supports and that capabilities must not list. See RFC 9420,
// Section 7.2.
func isDefaultExtension(t ExtensionType) bool {
	return t >= ExtensionApplicationID && t <= ExtensionExternalSenders
}

// isDefaultProposal reports whether t is one of the proposal types that
// every client supports and that capabilities must not list. See RFC 9420,
// Section 7.2.
func isDefaultProposal(t ProposalType) bool {
	return t >= ProposalTypeAdd && t <= ProposalTypeGroupContextExtensions
}

// NewKeyPackage makes a fresh KeyPackage for cs with a new init key and leaf
// encryption key, signed by sigKey, and returns it with its private keys.
//
// The capabilities list mls10, cs and cred's type, and no proposal or
// extension types beyond the defaults (which RFC 9420, Section 7.2 forbids
// listing) except those of opts' extensions. As Section 13.5 recommends, a
// random GREASE value is inserted in each list of the capabilities, and a
// GREASE extension with random content is added to the leaf node and to the
// KeyPackage. The lifetime runs from an hour before now, to tolerate
// receivers whose clocks are behind, to opts.Lifetime after now.
// See RFC 9420, Section 10.
func NewKeyPackage(cs CipherSuite, cred Credential, sigKey *SignaturePrivateKey, opts KeyPackageOptions) (*KeyPackage, *KeyPackageSecrets, error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	if sigKey.Scheme() != p.sig {
		return nil, nil, fmt.Errorf("mls: signature key is for scheme %v, suite %v uses %v", sigKey.Scheme(), cs, p.sig)
	}
	if cred.Type != CredentialBasic && cred.Type != CredentialX509 {
		return nil, nil, fmt.Errorf("mls: cannot make a key package with credential type 0x%04x", uint16(cred.Type))
	}
	if err := opts.LeafExtensions.validateUnique(); err != nil {
		return nil, nil, err
	}
	if err := opts.Extensions.validateUnique(); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	lifetime := opts.Lifetime
	if lifetime == 0 {
		lifetime = DefaultKeyPackageLifetime
	}
	if lifetime < 0 {
		return nil, nil, errors.New("mls: negative key package lifetime")
	}
	notBefore := now.Add(-keyPackageClockSkew).Unix()
	if notBefore < 0 {
		notBefore = 0
	}

	// One GREASE extension type is listed in the capabilities and used
	// for both the leaf's and the KeyPackage's GREASE extension, as
	// Section 13.5 requires for the leaf's.
	greaseExt := ExtensionType(randomGREASE())
	var extTypes []ExtensionType
	listed := map[ExtensionType]bool{greaseExt: true}
	for _, e := range append(append(Extensions(nil), opts.LeafExtensions...), opts.Extensions...) {
		if isDefaultExtension(e.Type) || listed[e.Type] {
			continue
		}
		listed[e.Type] = true
		extTypes = append(extTypes, e.Type)
	}
	extTypes = append(extTypes, greaseExt)
	leafExts := append(Extensions(nil), opts.LeafExtensions...)
	if _, ok := leafExts.Find(greaseExt); !ok {
		leafExts = append(leafExts, greaseExtension(greaseExt))
	}
	kpExts := append(Extensions(nil), opts.Extensions...)
	if _, ok := kpExts.Find(greaseExt); !ok {
		kpExts = append(kpExts, greaseExtension(greaseExt))
	}

	initKey, err := cs.GenerateHPKEKey()
	if err != nil {
		return nil, nil, err
	}
	encKey, err := cs.GenerateHPKEKey()
	if err != nil {
		return nil, nil, err
	}
	kp := &KeyPackage{
		Version:     ProtocolMLS10,
		CipherSuite: cs,
		InitKey:     initKey.PublicKey(),
		LeafNode: LeafNode{
			EncryptionKey: encKey.PublicKey(),
			SignatureKey:  sigKey.PublicKey(),
			Credential:    cred,
			Capabilities: Capabilities{
				Versions:     []ProtocolVersion{ProtocolMLS10},
				CipherSuites: insertGREASE([]CipherSuite{cs}),
				Extensions:   extTypes,
				Proposals:    insertGREASE([]ProposalType{}),
				Credentials:  insertGREASE([]CredentialType{cred.Type}),
			},
			Source:     LeafNodeSourceKeyPackage,
			Lifetime:   &Lifetime{NotBefore: uint64(notBefore), NotAfter: uint64(now.Add(lifetime).Unix())},
			Extensions: leafExts,
		},
		Extensions: kpExts,
	}
	if err := kp.LeafNode.sign(cs, sigKey, nil, 0); err != nil {
		return nil, nil, err
	}
	if err := kp.sign(cs, sigKey); err != nil {
		return nil, nil, err
	}
	ref, err := kp.Ref(cs)
	if err != nil {
		return nil, nil, err
	}
	return kp, &KeyPackageSecrets{
		CipherSuite:   cs,
		Ref:           ref,
		InitKey:       initKey,
		EncryptionKey: encKey,
		SignatureKey:  sigKey.PublicKey(),
	}, nil
}
