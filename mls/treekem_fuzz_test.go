package mls

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRatchetTreeValidate feeds ratchet_tree payloads to the checks a joiner
// runs: a tree that passes validate must then hash and resolve without
// panicking. Seeded from tree-validation.json.
func FuzzRatchetTreeValidate(f *testing.F) {
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "mls-test-vectors")
	}
	if data, err := os.ReadFile(filepath.Join(dir, "tree-validation.json")); err == nil {
		var cases []struct {
			CipherSuite CipherSuite `json:"cipher_suite"`
			Tree        hexBytes    `json:"tree"`
			GroupID     hexBytes    `json:"group_id"`
		}
		if err := json.Unmarshal(data, &cases); err != nil {
			f.Fatal(err)
		}
		for _, c := range cases {
			f.Add(uint16(c.CipherSuite), []byte(c.Tree), []byte(c.GroupID))
		}
	}
	f.Fuzz(func(t *testing.T, suite uint16, data, groupID []byte) {
		cs := CipherSuite(suite)
		if !cs.Supported() {
			return
		}
		tree, err := parseVectorTree(cs, data)
		if err != nil {
			return
		}
		if _, err := tree.rootHash(); err != nil {
			return
		}
		if err := tree.validate(groupID, nil); err != nil {
			return
		}
		for x := range tree.nodes {
			tree.resolution(nodeIndex(x))
		}
		for l := range tree.leafCount() {
			tree.filteredDirectPath(LeafIndex(l))
		}
	})
}

// FuzzTreePrivateKeys checks that the private key store's decoder refuses
// bad input without panicking and round-trips what it accepts.
func FuzzTreePrivateKeys(f *testing.F) {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	key, err := cs.DeriveHPKEKey(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	k := newTreePrivateKeys(3, key)
	k.keys[5] = key
	seed, err := k.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseTreePrivateKeys(cs, data)
		if err != nil {
			return
		}
		if _, err := k.Bytes(); err != nil {
			t.Fatal(err)
		}
	})
}
