package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testEpoch is the state a committer has when it sends a Welcome: a
// GroupContext, the joiner secret and the epoch's secrets.
type testEpoch struct {
	gc     *GroupContext
	joiner *joinerSecret
	epoch  *EpochSecrets
	sig    *SignaturePrivateKey
}

func newTestEpoch(t *testing.T, cs CipherSuite, pskSecret []byte) *testEpoch {
	t.Helper()
	init, err := newRandomInitSecret(cs)
	if err != nil {
		t.Fatal(err)
	}
	gc := &GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             cs,
		GroupID:                 []byte("group"),
		Epoch:                   1,
		TreeHash:                bytes.Repeat([]byte{1}, cs.HashSize()),
		ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, cs.HashSize()),
		Extensions:              Extensions{},
	}
	gcBytes, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	joiner, err := init.joiner(nil, gcBytes)
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := joiner.withPSK(pskSecret).epoch(gcBytes)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return &testEpoch{gc: gc, joiner: joiner, epoch: epoch, sig: sig}
}

func (e *testEpoch) groupInfo(t *testing.T, cs CipherSuite) *GroupInfo {
	t.Helper()
	tag := cs.mac(e.epoch.confirmationKey(), e.gc.ConfirmedTranscriptHash)
	gi, err := newExternalGroupInfo(cs, e.gc, e.epoch, nil, tag, 0, e.sig)
	if err != nil {
		t.Fatal(err)
	}
	return gi
}

func TestWelcomeRoundTrip(t *testing.T) {
	for _, cs := range CipherSuites() {
		for _, n := range []int{1, 3} {
			t.Run(fmt.Sprintf("%v/%d", cs, n), func(t *testing.T) {
				t.Parallel()
				e := newTestEpoch(t, cs, nil)
				gi := e.groupInfo(t, cs)
				var members []welcomeMember
				var secrets []*KeyPackageSecrets
				for i := range n {
					kp, s, _ := newTestKeyPackage(t, cs, fmt.Sprint("member", i))
					m := welcomeMember{KeyPackage: kp}
					if i == 1 {
						m.PathSecret = bytes.Repeat([]byte{7}, cs.SecretSize())
					}
					members = append(members, m)
					secrets = append(secrets, s)
				}
				w, err := buildWelcome(cs, gi, e.joiner, nil, nil, members)
				if err != nil {
					t.Fatal(err)
				}
				// Through the wire, as a new member receives it.
				data, err := w.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if w, err = UnmarshalWelcome(data); err != nil {
					t.Fatal(err)
				}
				wantGI, err := gi.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				for i, m := range members {
					opened, err := openWelcome(cs, w, m.KeyPackage, secrets[i].InitKey, nil, nil)
					if err != nil {
						t.Fatalf("member %d: %v", i, err)
					}
					gotGI, err := opened.GroupInfo.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(gotGI, wantGI) {
						t.Errorf("member %d: GroupInfo differs", i)
					}
					if !bytes.Equal(opened.Secrets.JoinerSecret, e.joiner.secret) {
						t.Errorf("member %d: joiner_secret differs", i)
					}
					if (opened.Secrets.PathSecret != nil) != (m.PathSecret != nil) ||
						m.PathSecret != nil && !bytes.Equal(opened.Secrets.PathSecret.PathSecret, m.PathSecret) {
						t.Errorf("member %d: path secret differs", i)
					}
					if err := opened.GroupInfo.verifySignature(cs, e.sig.PublicKey()); err != nil {
						t.Errorf("member %d: %v", i, err)
					}
					gc, err := opened.GroupInfo.GroupContext.Marshal()
					if err != nil {
						t.Fatal(err)
					}
					epoch, err := opened.intermediate.epoch(gc)
					if err != nil {
						t.Fatal(err)
					}
					if err := verifyConfirmationTag(cs, epoch, opened.GroupInfo); err != nil {
						t.Errorf("member %d: %v", i, err)
					}
					if !bytes.Equal(epoch.EpochAuthenticator(), e.epoch.EpochAuthenticator()) {
						t.Errorf("member %d: epoch_authenticator differs from the committer's", i)
					}
				}

				// A Welcome for someone else.
				stranger, strangerSecrets, _ := newTestKeyPackage(t, cs, "stranger")
				if _, err := openWelcome(cs, w, stranger, strangerSecrets.InitKey, nil, nil); !errors.Is(err, ErrWelcomeNotForUs) {
					t.Errorf("stranger: got %v, want ErrWelcomeNotForUs", err)
				}
				if got, want := ErrWelcomeNotForUs.Error(), "mls: welcome is not for this key package"; got != want {
					t.Errorf("ErrWelcomeNotForUs = %q, want %q", got, want)
				}

				// Tampering with encrypted_group_info breaks the
				// GroupSecrets' binding to it.
				tampered := *w
				tampered.EncryptedGroupInfo = bytes.Clone(w.EncryptedGroupInfo)
				tampered.EncryptedGroupInfo[len(tampered.EncryptedGroupInfo)-1] ^= 1
				if _, err := openWelcome(cs, &tampered, members[0].KeyPackage, secrets[0].InitKey, nil, nil); err == nil {
					t.Error("tampered encrypted_group_info accepted")
				}
			})
		}
	}
}

// TestDecryptGroupInfoTampered checks the AEAD layer on its own: the
// GroupSecrets check above would catch tampering first.
func TestDecryptGroupInfoTampered(t *testing.T) {
	for _, cs := range CipherSuites() {
		e := newTestEpoch(t, cs, nil)
		ws := e.joiner.withPSK(nil).welcome()
		ct, err := encryptGroupInfo(ws, e.groupInfo(t, cs))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decryptGroupInfo(ws, ct); err != nil {
			t.Fatalf("%v: %v", cs, err)
		}
		ct[0] ^= 1
		if _, err := decryptGroupInfo(ws, ct); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
			t.Errorf("%v: got %v, want a decryption error", cs, err)
		}
	}
}

func TestWelcomeWithPSKs(t *testing.T) {
	cs := CipherSuites()[0]
	nonce := func() []byte {
		n := make([]byte, cs.SecretSize())
		rand.Read(n)
		return n
	}
	ids := []PreSharedKeyID{
		{Type: PSKExternal, ID: []byte("ext"), Nonce: nonce()},
		{Type: PSKResumption, Usage: ResumptionApplication, GroupID: []byte("group"), Epoch: 0, Nonce: nonce()},
	}
	external := func(id *PreSharedKeyID) ([]byte, error) {
		if string(id.ID) == "ext" {
			return []byte("external psk"), nil
		}
		return nil, errors.New("unknown external PSK")
	}
	resumption := func(id *PreSharedKeyID) ([]byte, error) { return []byte("resumption psk"), nil }
	pskSecret, err := resolvePSKSecret(cs, ids, external, resumption)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEpoch(t, cs, pskSecret)
	kp, s, _ := newTestKeyPackage(t, cs, "carol")
	w, err := buildWelcome(cs, e.groupInfo(t, cs), e.joiner, ids, pskSecret, []welcomeMember{{KeyPackage: kp}})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := openWelcome(cs, w, kp, s.InitKey, external, resumption)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := opened.GroupInfo.GroupContext.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := opened.intermediate.epoch(gc)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyConfirmationTag(cs, epoch, opened.GroupInfo); err != nil {
		t.Error(err)
	}
	if _, err := openWelcome(cs, w, kp, s.InitKey, external, nil); err == nil || !strings.Contains(err.Error(), "no lookup") {
		t.Errorf("without a resumption lookup: got %v", err)
	}
	missing := func(*PreSharedKeyID) ([]byte, error) { return nil, errors.New("not held") }
	if _, err := openWelcome(cs, w, kp, s.InitKey, missing, resumption); err == nil || !strings.Contains(err.Error(), "not held") {
		t.Errorf("with a missing external PSK: got %v", err)
	}
}

func TestExternalGroupInfo(t *testing.T) {
	for _, cs := range CipherSuites() {
		e := newTestEpoch(t, cs, nil)
		gi := e.groupInfo(t, cs)
		info, err := readExternalGroupInfo(cs, gi, e.sig.PublicKey())
		if err != nil {
			t.Fatalf("%v: %v", cs, err)
		}
		want, err := e.epoch.ExternalPub()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(info.ExternalPub, want) {
			t.Errorf("%v: external_pub differs", cs)
		}
		if info.RatchetTree != nil {
			t.Errorf("%v: ratchet tree without a ratchet_tree extension", cs)
		}
		// The joiner's external init agrees with the group's.
		kemOutput, joinerInit, err := cs.externalInit(info.ExternalPub)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := e.epoch.externalKey()
		if err != nil {
			t.Fatal(err)
		}
		groupInit, err := cs.externalInitSecret(priv, kemOutput)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(joinerInit.secret, groupInit.secret) {
			t.Errorf("%v: external init secrets differ", cs)
		}

		other, err := cs.GenerateSignatureKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readExternalGroupInfo(cs, gi, other.PublicKey()); err == nil {
			t.Errorf("%v: GroupInfo verified under the wrong key", cs)
		}
		plain, err := newGroupInfo(cs, e.gc, nil, gi.ConfirmationTag, 0, e.sig)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readExternalGroupInfo(cs, plain, e.sig.PublicKey()); err == nil || !strings.Contains(err.Error(), "no external_pub") {
			t.Errorf("%v: got %v, want the missing external_pub error", cs, err)
		}
		if _, err := newExternalGroupInfo(cs, e.gc, e.epoch, gi.Extensions, gi.ConfirmationTag, 0, e.sig); err == nil {
			t.Errorf("%v: second external_pub accepted", cs)
		}
	}
}
