package mls

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestValidateLeafNodeUpdate checks a leaf node of an Update proposal,
// whose signature binds it to its group and leaf index.
func TestValidateLeafNodeUpdate(t *testing.T) {
	for _, cs := range CipherSuites() {
		kp, secrets, sig := newTestKeyPackage(t, cs, "dave")
		leaf := kp.LeafNode
		leaf.Source = LeafNodeSourceUpdate
		leaf.Lifetime = nil
		newKey, err := cs.GenerateHPKEKey()
		if err != nil {
			t.Fatal(err)
		}
		leaf.EncryptionKey = newKey.PublicKey()
		if err := leaf.sign(cs, sig, []byte("group"), 3); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(leaf.EncryptionKey, secrets.EncryptionKey.PublicKey()) {
			t.Fatal("update reuses the encryption key")
		}
		if err := validateLeafNode(cs, &leaf, LeafNodeSourceUpdate, []byte("group"), 3, nil, AcceptAnyCredential, time.Time{}); err != nil {
			t.Errorf("%v: %v", cs, err)
		}
		for _, c := range []struct {
			groupID []byte
			index   LeafIndex
			source  LeafNodeSource
			want    string
		}{
			{[]byte("other"), 3, LeafNodeSourceUpdate, "leaf 3"},
			{[]byte("group"), 4, LeafNodeSourceUpdate, "leaf 4"},
			{[]byte("group"), 3, LeafNodeSourceCommit, "source 2 where 3 is required"},
		} {
			err := validateLeafNode(cs, &leaf, c.source, c.groupID, c.index, nil, AcceptAnyCredential, time.Time{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: got %v, want an error containing %q", cs, err, c.want)
			}
		}
	}
}

func TestValidateExternalSenders(t *testing.T) {
	cs := CipherSuites()[0]
	sig, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	senders := ExternalSenders{{SignatureKey: sig.PublicKey(), Credential: Credential{Type: CredentialBasic, Identity: []byte("server")}}}
	if err := validateExternalSenders(cs, senders, AcceptAnyCredential); err != nil {
		t.Fatal(err)
	}
	refuse := func(CipherSuite, *Credential, []byte) error { return errors.New("not our server") }
	if err := validateExternalSenders(cs, senders, refuse); err == nil || err.Error() != "mls: external sender 0: credential rejected: not our server" {
		t.Errorf("got %v", err)
	}
	if err := validateExternalSenders(cs, senders, nil); err == nil {
		t.Error("nil validator accepted")
	}
	senders[0].SignatureKey = []byte{1}
	if err := validateExternalSenders(cs, senders, AcceptAnyCredential); err == nil || !strings.Contains(err.Error(), "signature public key") {
		t.Errorf("got %v", err)
	}
}

func FuzzKeyPackageSecrets(f *testing.F) {
	for _, cs := range CipherSuites() {
		_, s, _ := newTestKeyPackage(f, cs, "fuzz")
		data, err := s.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseKeyPackageSecrets(data)
		if err != nil {
			return
		}
		out, err := s.Bytes()
		if err != nil {
			t.Fatalf("parsed secrets do not re-encode: %v", err)
		}
		if _, err := ParseKeyPackageSecrets(out); err != nil {
			t.Fatalf("re-encoded secrets do not parse: %v", err)
		}
	})
}
