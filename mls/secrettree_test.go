package mls

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

const testTreeSuite = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

func testSecretTree(leaves uint32) *secretTree {
	return newSecretTree(testTreeSuite, bytes.Repeat([]byte{0x5e}, testTreeSuite.SecretSize()), leaves)
}

// eagerLeafSecret derives a leaf's secret the way Section 9 draws it,
// recursively from the root, as a reference for the lazy tree.
func eagerLeafSecret(cs CipherSuite, secret []byte, x, target nodeIndex) []byte {
	if x == target {
		return secret
	}
	if target < x {
		return eagerLeafSecret(cs, cs.mustExpandWithLabel(secret, "tree", []byte("left"), cs.SecretSize()), x.left(), target)
	}
	return eagerLeafSecret(cs, cs.mustExpandWithLabel(secret, "tree", []byte("right"), cs.SecretSize()), x.right(), target)
}

// TestSecretTreeLazy checks the lazily derived tree against the eager
// reference for every leaf of trees of 1 to 17 leaves, visiting leaves in
// random order, and that no node secret is left once every leaf is used.
func TestSecretTreeLazy(t *testing.T) {
	cs := testTreeSuite
	rootSecret := bytes.Repeat([]byte{0x5e}, cs.SecretSize())
	for n := uint32(1); n <= 17; n++ {
		tree := testSecretTree(n)
		for _, i := range rand.Perm(int(n)) {
			leaf := LeafIndex(i)
			got, err := tree.next(leaf, ratchetApplication)
			if err != nil {
				t.Fatal(err)
			}
			ls := eagerLeafSecret(cs, rootSecret, root(n), leaf.node())
			app := cs.mustExpandWithLabel(ls, "application", nil, cs.SecretSize())
			want, err := cs.DeriveTreeSecret(app, "key", 0, cs.KeySize())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.key, want) {
				t.Errorf("%d leaves, leaf %d: key %x, want %x", n, leaf, got.key, want)
			}
		}
		if len(tree.nodes) != 0 {
			t.Errorf("%d leaves: %d node secrets left after every leaf was used", n, len(tree.nodes))
		}
		if _, err := tree.next(LeafIndex(n), ratchetApplication); err == nil {
			t.Errorf("%d leaves: next accepted leaf %d", n, n)
		}
		if _, err := tree.get(LeafIndex(n), ratchetHandshake, 0); err == nil {
			t.Errorf("%d leaves: get accepted leaf %d", n, n)
		}
	}
}

// TestSecretTreeDeletesParents checks the deletion schedule of Section 9.2:
// using one leaf leaves exactly the copath secrets.
func TestSecretTreeDeletesParents(t *testing.T) {
	tree := testSecretTree(8)
	if _, err := tree.next(5, ratchetHandshake); err != nil {
		t.Fatal(err)
	}
	want := LeafIndex(5).node().copath(8)
	if len(tree.nodes) != len(want) {
		t.Fatalf("tree holds %d node secrets, want the %d of the copath", len(tree.nodes), len(want))
	}
	for _, x := range want {
		if _, ok := tree.nodes[x]; !ok {
			t.Errorf("copath node %d was deleted", x)
		}
	}
}

func wantGenerationError(t *testing.T, err, target error) {
	t.Helper()
	var ge *GenerationError
	if !errors.Is(err, target) || !errors.As(err, &ge) {
		t.Fatalf("got error %v, want a GenerationError for %v", err, target)
	}
}

// TestSecretTreeOrdering checks in-order and out-of-order delivery, reuse
// and the forward window, and that sender and receiver agree.
func TestSecretTreeOrdering(t *testing.T) {
	sender, receiver := testSecretTree(4), testSecretTree(4)
	var sent []ratchetKey
	for range 10 {
		k, err := sender.next(2, ratchetApplication)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, k)
	}
	for i, k := range sent {
		if k.generation != uint32(i) {
			t.Fatalf("next returned generation %d, want %d", k.generation, i)
		}
	}
	receive := func(g uint32) {
		t.Helper()
		k, err := receiver.get(2, ratchetApplication, g)
		if err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
		if k.generation != g || !bytes.Equal(k.key, sent[g].key) || !bytes.Equal(k.nonce, sent[g].nonce) {
			t.Fatalf("generation %d: receiver's key differs from sender's", g)
		}
	}
	receive(0)
	receive(1)
	receive(5) // skips 2, 3, 4
	receive(3)
	receive(9) // skips 6, 7, 8
	receive(2)
	receive(8)
	receive(4)
	receive(6)
	receive(7)
	for g := range uint32(10) {
		_, err := receiver.get(2, ratchetApplication, g)
		wantGenerationError(t, err, ErrGenerationUsed)
	}
	// The handshake ratchet of the same leaf is independent.
	if _, err := receiver.get(2, ratchetHandshake, 0); err != nil {
		t.Fatal(err)
	}
	_, err := receiver.get(2, ratchetApplication, 10+defaultMaxForwardDistance+1)
	wantGenerationError(t, err, ErrGenerationTooFar)
	if _, err := receiver.get(2, ratchetApplication, 10+defaultMaxForwardDistance); err != nil {
		t.Fatalf("generation at the edge of the window: %v", err)
	}
}

// TestSecretTreeRetentionBound checks that a ratchet keeps at most
// maxRetainedKeys skipped keys, dropping the oldest.
func TestSecretTreeRetentionBound(t *testing.T) {
	tree := testSecretTree(2)
	tree.maxRetainedKeys = 3
	if _, err := tree.get(1, ratchetApplication, 10); err != nil {
		t.Fatal(err)
	}
	if n := len(tree.ratchets[1][ratchetApplication].retained); n != 3 {
		t.Fatalf("ratchet retains %d keys, want 3", n)
	}
	for g := range uint32(7) {
		_, err := tree.get(1, ratchetApplication, g)
		wantGenerationError(t, err, ErrGenerationUsed)
	}
	for g := uint32(7); g < 10; g++ {
		if _, err := tree.get(1, ratchetApplication, g); err != nil {
			t.Fatalf("generation %d: %v", g, err)
		}
	}
	tree.maxForwardDistance = 5
	_, err := tree.get(1, ratchetApplication, 17)
	wantGenerationError(t, err, ErrGenerationTooFar)
	if _, err := tree.get(1, ratchetApplication, 16); err != nil {
		t.Fatal(err)
	}
}

// TestSecretTreeForwardSecrecy checks that once a key is used, nothing left
// in the tree holds it or can derive it again (Section 9.2): neither the
// retained keys, nor the ratchet secret, which has moved past it.
func TestSecretTreeForwardSecrecy(t *testing.T) {
	tree := testSecretTree(2)
	k3, err := tree.get(0, ratchetApplication, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := &tree.ratchets[0][ratchetApplication]
	if _, ok := r.retained[3]; ok {
		t.Error("a used key is still retained")
	}
	if r.next != 4 {
		t.Errorf("ratchet is at generation %d, want 4", r.next)
	}
	// Deriving forward from what is left never produces generation 3.
	s := bytes.Clone(r.secret)
	for g := r.next; g < r.next+8; g++ {
		if bytes.Equal(tree.keyAt(s, g).key, k3.key) {
			t.Fatalf("generation %d of the remaining ratchet re-derives the used key", g)
		}
		s = tree.secretAfter(s, g)
	}
	for _, k := range r.retained {
		if bytes.Equal(k.key, k3.key) {
			t.Error("the used key is still in the tree")
		}
	}
	_, err = tree.get(0, ratchetApplication, 3)
	wantGenerationError(t, err, ErrGenerationUsed)
	_, err = tree.peek(0, ratchetApplication, 3)
	wantGenerationError(t, err, ErrGenerationUsed)

	// The sender's keys are deleted as they are handed out.
	sent, err := tree.next(1, ratchetHandshake)
	if err != nil {
		t.Fatal(err)
	}
	hs := &tree.ratchets[1][ratchetHandshake]
	if len(hs.retained) != 0 || hs.next != sent.generation+1 {
		t.Error("the sender's ratchet kept a key it handed out")
	}
}

// TestSecretTreeForgeryKeepsKey checks that a message that fails to decrypt
// does not burn the key of the legitimate message with the same
// generation: peek changes nothing, and only consume deletes.
func TestSecretTreeForgeryKeepsKey(t *testing.T) {
	sender, receiver := testSecretTree(2), testSecretTree(2)
	var want ratchetKey
	for range 6 {
		k, err := sender.next(1, ratchetApplication)
		if err != nil {
			t.Fatal(err)
		}
		want = k
	}
	// A forgery claims generation 5; the receiver peeks, fails to
	// decrypt, and so never consumes.
	forged, err := receiver.peek(1, ratchetApplication, 5)
	if err != nil {
		t.Fatal(err)
	}
	if r := &receiver.ratchets[1][ratchetApplication]; r.next != 0 || len(r.retained) != 0 {
		t.Fatal("peek moved the ratchet")
	}
	clear(forged.key) // the caller may scrub what peek returned
	// The legitimate message still decrypts, and is then consumed.
	k, err := receiver.peek(1, ratchetApplication, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.key, want.key) || !bytes.Equal(k.nonce, want.nonce) {
		t.Fatal("peek after a forgery returned another key")
	}
	if err := receiver.consume(1, ratchetApplication, 5); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.key, want.key) {
		t.Error("consume scrubbed the caller's copy of the key")
	}
	err = receiver.consume(1, ratchetApplication, 5)
	wantGenerationError(t, err, ErrGenerationUsed)
	// The skipped generations are retained, and peek of a retained key
	// leaves it in place too.
	if _, err := receiver.peek(1, ratchetApplication, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := receiver.get(1, ratchetApplication, 2); err != nil {
		t.Fatal(err)
	}
}

// TestSenderDataSample checks that the sender data key depends on at most
// KDF.Nh bytes of ciphertext and accepts a shorter one.
func TestSenderDataSample(t *testing.T) {
	cs := testTreeSuite
	secret := bytes.Repeat([]byte{1}, cs.SecretSize())
	ct := bytes.Repeat([]byte{2}, 100)
	k1, n1 := senderDataKeyNonce(cs, secret, ct)
	k2, n2 := senderDataKeyNonce(cs, secret, append(bytes.Clone(ct[:cs.SecretSize()]), 9, 9))
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Error("sender data key depends on bytes past KDF.Nh")
	}
	k3, _ := senderDataKeyNonce(cs, secret, ct[:5])
	if len(k3) != cs.KeySize() || bytes.Equal(k3, k1) {
		t.Error("short ciphertext sample mishandled")
	}
}

func TestGenerationErrorMessage(t *testing.T) {
	tree := testSecretTree(4)
	if _, err := tree.get(3, ratchetApplication, 0); err != nil {
		t.Fatal(err)
	}
	_, err := tree.get(3, ratchetApplication, 0)
	if got, want := err.Error(), "mls: generation 0 of leaf 3's application ratchet was already used or deleted"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}
