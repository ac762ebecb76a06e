package mls

import (
	"bytes"
	"strings"
	"testing"
)

func TestGroupStateRoundTrip(t *testing.T) {
	for _, cs := range []CipherSuite{MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, MLS_128_DHKEMP256_AES128GCM_SHA256_P256, MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448} {
		t.Run(cs.String(), func(t *testing.T) {
			cfg := testConfig()
			alice, bob := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob")
			kpA, secA := alice.keyPackage(t)
			a, err := NewGroup(cfg, []byte("g"), kpA, secA, alice.sigKey, nil)
			if err != nil {
				t.Fatal(err)
			}
			kpB, secB := bob.keyPackage(t)
			out, err := a.Commit(CommitOptions{Add: []*KeyPackage{kpB}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.MarshalState(); err == nil {
				t.Fatal("MarshalState with a pending commit succeeded")
			}
			if _, err := a.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			b, err := JoinFromWelcome(cfg, out.Welcome.Welcome, kpB, secB, bob.sigKey, nil)
			if err != nil {
				t.Fatal(err)
			}
			// A message before saving, then save and restore Alice.
			m1, err := a.Encrypt([]byte("one"), nil)
			if err != nil {
				t.Fatal(err)
			}
			state, err := a.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			a2, err := RestoreGroup(cfg, state, alice.sigKey)
			if err != nil {
				t.Fatal(err)
			}
			state2, err := a2.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(state, state2) {
				t.Fatal("state changed in a round trip")
			}
			// The restored member must not reuse generation 0.
			m2, err := a2.Encrypt([]byte("two"), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []*MLSMessage{m1, m2} {
				if _, err := b.Process(roundTrip(t, m)); err != nil {
					t.Fatal(err)
				}
			}
			// Alice proposes an update and is restored again: the
			// proposal and the update's private key survive.
			up, err := a2.ProposeUpdate()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Process(roundTrip(t, up)); err != nil {
				t.Fatal(err)
			}
			if state, err = a2.MarshalState(); err != nil {
				t.Fatal(err)
			}
			if a2, err = RestoreGroup(cfg, state, alice.sigKey); err != nil {
				t.Fatal(err)
			}
			// Bob commits Alice's update; the restored Alice follows.
			out, err = b.Commit(CommitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a2.Process(roundTrip(t, out.Commit)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			checkAgree(t, a2, b)

			bad := append([]byte{0, 9}, state[2:]...)
			if _, err := RestoreGroup(cfg, bad, alice.sigKey); err == nil || !strings.Contains(err.Error(), "format version 9") {
				t.Fatalf("unknown version: got %v", err)
			}
			if _, err := RestoreGroup(cfg, state, bob.sigKey); err == nil {
				t.Fatal("restored with another member's signature key")
			}
		})
	}
}
