package mls_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/tainik/tainik/mls"
)

// member is one client of the examples: its long-term signature key and
// credential.
type member struct {
	sigKey *mls.SignaturePrivateKey
	cred   mls.Credential
}

func newMember(cs mls.CipherSuite, name string) member {
	sk, err := cs.GenerateSignatureKey()
	if err != nil {
		log.Fatal(err)
	}
	return member{sigKey: sk, cred: mls.Credential{Type: mls.CredentialBasic, Identity: []byte(name)}}
}

// exampleConfig is the Config of the examples. A client must authenticate
// credentials; AcceptAnyCredential authenticates nobody.
var exampleConfig = mls.Config{ValidateCredential: mls.AcceptAnyCredential}

// send stands in for the relay: it encodes a message and decodes it at the
// receiver.
func send(m *mls.MLSMessage) *mls.MLSMessage {
	data, err := m.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	out, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		log.Fatal(err)
	}
	return out
}

// This example creates a group, adds a member who joins by Welcome,
// exchanges a message, exports a secret, saves and restores a member's
// state, and removes the member.
func ExampleGroup() {
	cs := mls.CipherSuite(1) // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	alice, bob := newMember(cs, "alice"), newMember(cs, "bob")

	// Alice creates the group from one of her KeyPackages.
	kpA, secA, err := mls.NewKeyPackage(cs, alice.cred, alice.sigKey, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	a, err := mls.NewGroup(exampleConfig, []byte("chat-42"), kpA, secA, alice.sigKey, nil)
	if err != nil {
		log.Fatal(err)
	}

	// Bob has published a KeyPackage; Alice adds him. The commit waits
	// as pending until the relay accepts it; the relay's echo merges it.
	kpB, secB, err := mls.NewKeyPackage(cs, bob.cred, bob.sigKey, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	out, err := a.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpB}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.Process(send(out.Commit)); err != nil {
		log.Fatal(err)
	}
	b, err := mls.JoinFromWelcome(exampleConfig, send(out.Welcome).Welcome, kpB, secB, bob.sigKey, nil)
	if err != nil {
		log.Fatal(err)
	}

	// An application message.
	msg, err := b.Encrypt([]byte("hi alice"), nil)
	if err != nil {
		log.Fatal(err)
	}
	got, err := a.Process(send(msg))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("alice read %q from leaf %d\n", got.ApplicationData, got.Sender.Leaf)

	// Both derive the same exported secret, e.g. for a call's media keys.
	ka, _ := a.Export("call keys", nil, 32)
	kb, _ := b.Export("call keys", nil, 32)
	fmt.Println("same exported secret:", bytes.Equal(ka, kb))

	// Bob saves his state and restores it later.
	state, err := b.MarshalState()
	if err != nil {
		log.Fatal(err)
	}
	b, err = mls.RestoreGroup(exampleConfig, state, bob.sigKey)
	if err != nil {
		log.Fatal(err)
	}

	// Alice removes Bob.
	out, err = a.Commit(mls.CommitOptions{Remove: []mls.LeafIndex{b.OwnLeaf()}})
	if err != nil {
		log.Fatal(err)
	}
	p, err := b.Process(send(out.Commit))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.MergePendingCommit(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob removed:", p.Commit.RemovedSelf)
	fmt.Println("members:", len(a.Members()), "epoch:", a.Epoch())
	// Output:
	// alice read "hi alice" from leaf 1
	// same exported secret: true
	// bob removed: true
	// members: 1 epoch: 2
}

// This example joins a group by external commit, with a GroupInfo that a
// member published.
func ExampleJoinExternal() {
	cs := mls.CipherSuite(1)
	alice, carol := newMember(cs, "alice"), newMember(cs, "carol")
	kpA, secA, err := mls.NewKeyPackage(cs, alice.cred, alice.sigKey, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	a, err := mls.NewGroup(exampleConfig, []byte("open-room"), kpA, secA, alice.sigKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	gi, err := a.GroupInfo(false)
	if err != nil {
		log.Fatal(err)
	}
	c, commit, err := mls.JoinExternal(exampleConfig, gi, nil, carol.cred, carol.sigKey, mls.ExternalJoinOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.Process(send(commit)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("same epoch authenticator:", bytes.Equal(a.EpochAuthenticator(), c.EpochAuthenticator()))
	// Output:
	// same epoch authenticator: true
}

// A member refreshes its leaf key with an Update proposal; another member
// commits it, and both move to the new epoch with the same authenticator.
// This is how a member heals after a suspected compromise (RFC 9420,
// Section 12.1.2).
func ExampleGroup_ProposeUpdate() {
	cs := mls.CipherSuite(1)
	alice, bob := newMember(cs, "alice"), newMember(cs, "bob")
	kpA, secA, err := mls.NewKeyPackage(cs, alice.cred, alice.sigKey, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	a, err := mls.NewGroup(exampleConfig, []byte("chat-43"), kpA, secA, alice.sigKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	kpB, secB, err := mls.NewKeyPackage(cs, bob.cred, bob.sigKey, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	out, err := a.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpB}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.MergePendingCommit(); err != nil {
		log.Fatal(err)
	}
	b, err := mls.JoinFromWelcome(exampleConfig, send(out.Welcome).Welcome, kpB, secB, bob.sigKey, nil)
	if err != nil {
		log.Fatal(err)
	}

	// Bob proposes an Update; Alice receives it and commits it.
	update, err := b.ProposeUpdate()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.Process(send(update)); err != nil {
		log.Fatal(err)
	}
	out, err = a.Commit(mls.CommitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.MergePendingCommit(); err != nil {
		log.Fatal(err)
	}
	p, err := b.Process(send(out.Commit))
	if err != nil {
		log.Fatal(err)
	}
	// Bob's leaf (1) was updated by his proposal, and Alice's (0) by the
	// UpdatePath of her commit.
	fmt.Println("updated leaves:", p.Commit.Updated)
	fmt.Println("epoch:", a.Epoch(), b.Epoch())
	fmt.Println("same authenticator:", bytes.Equal(a.EpochAuthenticator(), b.EpochAuthenticator()))
	// Output:
	// updated leaves: [1 0]
	// epoch: 2 2
	// same authenticator: true
}
