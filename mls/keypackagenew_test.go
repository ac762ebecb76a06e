package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newTestKeyPackage(t testing.TB, cs CipherSuite, name string) (*KeyPackage, *KeyPackageSecrets, *SignaturePrivateKey) {
	t.Helper()
	sig, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	cred := Credential{Type: CredentialBasic, Identity: []byte(name)}
	kp, secrets, err := NewKeyPackage(cs, cred, sig, KeyPackageOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return kp, secrets, sig
}

func TestNewKeyPackage(t *testing.T) {
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			kp, secrets, sig := newTestKeyPackage(t, cs, "alice")
			if err := validateKeyPackage(cs, kp, nil, AcceptAnyCredential, testNow); err != nil {
				t.Fatalf("fresh key package does not validate: %v", err)
			}
			data, err := kp.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := UnmarshalKeyPackage(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateKeyPackage(cs, decoded, nil, AcceptAnyCredential, testNow); err != nil {
				t.Fatalf("decoded key package does not validate: %v", err)
			}
			ref, err := kp.Ref(cs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(secrets.Ref, ref) {
				t.Errorf("secrets.Ref = %x, want %x", secrets.Ref, ref)
			}
			if !bytes.Equal(secrets.InitKey.PublicKey(), kp.InitKey) || !bytes.Equal(secrets.EncryptionKey.PublicKey(), kp.LeafNode.EncryptionKey) || !bytes.Equal(secrets.SignatureKey, sig.PublicKey()) {
				t.Error("secrets do not match the key package")
			}
			caps := kp.LeafNode.Capabilities
			for _, list := range [][]uint16{
				toUint16(caps.CipherSuites), toUint16(caps.Extensions), toUint16(caps.Proposals), toUint16(caps.Credentials),
			} {
				if !containsGREASE(list) {
					t.Errorf("capabilities list %x has no GREASE value", list)
				}
			}
			for _, e := range caps.Extensions {
				if isDefaultExtension(e) {
					t.Errorf("capabilities list default extension %v", e)
				}
			}
			if !containsGREASE(extTypes(kp.Extensions)) || !containsGREASE(extTypes(kp.LeafNode.Extensions)) {
				t.Error("no GREASE extension in the key package or its leaf")
			}
			if got, want := kp.LeafNode.Lifetime.NotAfter, uint64(testNow.Add(DefaultKeyPackageLifetime).Unix()); got != want {
				t.Errorf("not_after = %d, want %d", got, want)
			}
			if got := kp.LeafNode.Lifetime.NotBefore; got >= uint64(testNow.Unix()) {
				t.Errorf("not_before = %d is not before now %d", got, testNow.Unix())
			}

			stored, err := secrets.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			restored, err := ParseKeyPackageSecrets(stored)
			if err != nil {
				t.Fatal(err)
			}
			if restored.CipherSuite != cs || !bytes.Equal(restored.Ref, secrets.Ref) || !bytes.Equal(restored.SignatureKey, secrets.SignatureKey) ||
				!bytes.Equal(restored.InitKey.PublicKey(), kp.InitKey) || !bytes.Equal(restored.EncryptionKey.PublicKey(), kp.LeafNode.EncryptionKey) {
				t.Error("restored secrets differ")
			}
			if _, err := ParseKeyPackageSecrets(append(stored, 0)); err == nil {
				t.Error("trailing byte accepted")
			}
		})
	}
}

func toUint16[T ~uint16](v []T) []uint16 {
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = uint16(x)
	}
	return out
}

func extTypes(e Extensions) []uint16 {
	var out []uint16
	for _, x := range e {
		out = append(out, uint16(x.Type))
	}
	return out
}

func containsGREASE(v []uint16) bool {
	for _, x := range v {
		if isGREASE(x) {
			return true
		}
	}
	return false
}

// TestValidateKeyPackageRejects changes one thing in a valid KeyPackage and
// checks that validation fails for that reason.
func TestValidateKeyPackageRejects(t *testing.T) {
	cs := CipherSuites()[0]
	other := CipherSuites()[1]
	refuse := func(CipherSuite, *Credential, []byte) error { return errors.New("unknown user") }
	reqCaps, err := (&RequiredCapabilities{ExtensionTypes: []ExtensionType{0x0abc}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		modify    func(kp *KeyPackage, sig *SignaturePrivateKey)
		groupExts Extensions
		validate  CredentialValidator
		now       time.Time
		want      string
	}{
		{name: "version", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) { kp.Version = 2; kp.sign(cs, sig) }, want: "unsupported version 2"},
		{name: "suite", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) { kp.CipherSuite = other; kp.sign(cs, sig) }, want: "is for suite"},
		{name: "signature", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) { kp.Signature[0] ^= 1 }, want: "KeyPackage"},
		{name: "init key equals encryption key", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.InitKey = kp.LeafNode.EncryptionKey
			kp.sign(cs, sig)
		}, want: "init_key equals"},
		{name: "init key garbage", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) { kp.InitKey = []byte{1, 2, 3}; kp.sign(cs, sig) }, want: "init_key"},
		{name: "unlisted key package extension", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.Extensions = append(kp.Extensions, Extension{Type: 0x0abc})
			kp.sign(cs, sig)
		}, want: "key package extension 0x0abc is not listed"},
		{name: "leaf signature", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.Signature[0] ^= 1
			kp.sign(cs, sig)
		}, want: "leaf 0"},
		{name: "leaf source", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.Source = LeafNodeSourceUpdate
			kp.LeafNode.Lifetime = nil
			kp.LeafNode.sign(cs, sig, nil, 0)
			kp.sign(cs, sig)
		}, want: "source 2 where 1 is required"},
		{name: "credential refused", modify: func(*KeyPackage, *SignaturePrivateKey) {}, validate: refuse, want: "credential rejected: unknown user"},
		{name: "no validator", modify: func(*KeyPackage, *SignaturePrivateKey) {}, validate: nil, want: "no credential validator"},
		{name: "suite not in capabilities", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.Capabilities.CipherSuites = []CipherSuite{other}
			kp.LeafNode.sign(cs, sig, nil, 0)
			kp.sign(cs, sig)
		}, want: "do not list cipher suite"},
		{name: "version not in capabilities", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.Capabilities.Versions = []ProtocolVersion{0x0a0a}
			kp.LeafNode.sign(cs, sig, nil, 0)
			kp.sign(cs, sig)
		}, want: "do not list version mls10"},
		{name: "credential type not in capabilities", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.Capabilities.Credentials = []CredentialType{CredentialX509}
			kp.LeafNode.sign(cs, sig, nil, 0)
			kp.sign(cs, sig)
		}, want: "do not list its own credential type 0x0001"},
		{name: "unlisted leaf extension", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.Extensions = append(kp.LeafNode.Extensions, Extension{Type: 0x0abc})
			kp.LeafNode.sign(cs, sig, nil, 0)
			kp.sign(cs, sig)
		}, want: "leaf node extension 0x0abc is not listed"},
		{name: "bad encryption key", modify: func(kp *KeyPackage, sig *SignaturePrivateKey) {
			kp.LeafNode.EncryptionKey = []byte{1}
			kp.LeafNode.sign(cs, sig, nil, 0)
			kp.sign(cs, sig)
		}, want: "encryption_key"},
		{name: "not yet valid", modify: func(*KeyPackage, *SignaturePrivateKey) {}, now: testNow.Add(-2 * time.Hour), want: "not valid before"},
		{name: "expired", modify: func(*KeyPackage, *SignaturePrivateKey) {}, now: testNow.Add(DefaultKeyPackageLifetime + time.Second), want: "expired at"},
		{name: "required extension", modify: func(*KeyPackage, *SignaturePrivateKey) {}, groupExts: Extensions{{Type: ExtensionRequiredCapabilities, Data: reqCaps}}, want: "required extension 0x0abc"},
		{name: "group extension", modify: func(*KeyPackage, *SignaturePrivateKey) {}, groupExts: Extensions{{Type: 0x0abd}}, want: "group context extension 0x0abd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, _, sig := newTestKeyPackage(t, cs, "bob")
			tt.modify(kp, sig)
			validate := tt.validate
			if validate == nil && tt.want != "no credential validator" {
				validate = AcceptAnyCredential
			}
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			err := validateKeyPackage(cs, kp, tt.groupExts, validate, now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validateKeyPackage = %v, want an error containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "mls: ") {
				t.Errorf("error %q lacks the mls: prefix", err)
			}
		})
	}
}

// TestValidateVectorKeyPackages checks that the KeyPackages of other
// implementations in the official vectors pass validation (lifetimes
// aside: the vectors' have expired).
//
// The one exception: the suite-7 KeyPackage of welcome.json does not list
// its own suite in its capabilities, which RFC 9420, Section 7.2 requires
// ("The client MUST list all values ... that it supports"), and is refused.
func TestValidateVectorKeyPackages(t *testing.T) {
	dir := vectorDir(t)
	for _, file := range []string{"welcome.json", "passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var cases []struct {
			CipherSuite CipherSuite `json:"cipher_suite"`
			KeyPackage  hexBytes    `json:"key_package"`
		}
		if err := json.Unmarshal(data, &cases); err != nil {
			t.Fatal(err)
		}
		for i, c := range cases {
			if !c.CipherSuite.Supported() {
				continue
			}
			m, err := UnmarshalMLSMessage(c.KeyPackage)
			if err != nil {
				t.Fatalf("%s case %d: %v", file, i, err)
			}
			err = validateKeyPackage(c.CipherSuite, m.KeyPackage, nil, AcceptAnyCredential, time.Time{})
			if file == "welcome.json" && c.CipherSuite == 7 {
				if err == nil || !strings.Contains(err.Error(), "do not list cipher suite") {
					t.Errorf("%s case %d: got %v, want the unlisted-suite error", file, i, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s case %d: %v", file, i, err)
			}
		}
	}
}
