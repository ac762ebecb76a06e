package mls

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// parseVectorTree decodes a ratchet_tree payload of a vector into a tree.
func parseVectorTree(cs CipherSuite, data []byte) (*ratchetTree, error) {
	wire, err := UnmarshalRatchetTree(data)
	if err != nil {
		return nil, err
	}
	return newRatchetTree(cs, wire)
}

// checkTreeValidationVector checks resolutions, tree hashes, parent hashes
// and leaf signatures. See RFC 9420, Sections 4.1.1, 7.8, 7.9.2 and 7.3.
func checkTreeValidationVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		Tree        hexBytes    `json:"tree"`
		GroupID     hexBytes    `json:"group_id"`
		Resolutions [][]uint32  `json:"resolutions"`
		TreeHashes  []hexBytes  `json:"tree_hashes"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	t, err := parseVectorTree(cs, v.Tree)
	if err != nil {
		return err
	}
	if len(v.Resolutions) != len(t.nodes) || len(v.TreeHashes) != len(t.nodes) {
		return fmt.Errorf("vector has %d resolutions and %d tree hashes for %d nodes", len(v.Resolutions), len(v.TreeHashes), len(t.nodes))
	}
	for i := range t.nodes {
		got := t.resolution(nodeIndex(i))
		want := make([]nodeIndex, len(v.Resolutions[i]))
		for j, x := range v.Resolutions[i] {
			want[j] = nodeIndex(x)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("resolution of node %d: got %v, want %v", i, got, want)
		}
		h, err := t.treeHash(nodeIndex(i))
		if err != nil {
			return err
		}
		if err := checkEqual(fmt.Sprintf("tree hash of node %d", i), h, v.TreeHashes[i]); err != nil {
			return err
		}
	}
	// validate covers the parent hashes and leaf signatures the vector
	// asks for, and the rest of what a joiner checks.
	return t.validate(v.GroupID, nil)
}

// checkTreeOperationsVector applies an Add, Update or Remove proposal to a
// tree and compares the result. See RFC 9420, Section 12.1.
func checkTreeOperationsVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite    CipherSuite `json:"cipher_suite"`
		TreeBefore     hexBytes    `json:"tree_before"`
		Proposal       hexBytes    `json:"proposal"`
		ProposalSender LeafIndex   `json:"proposal_sender"`
		TreeHashBefore hexBytes    `json:"tree_hash_before"`
		TreeAfter      hexBytes    `json:"tree_after"`
		TreeHashAfter  hexBytes    `json:"tree_hash_after"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	t, err := parseVectorTree(cs, v.TreeBefore)
	if err != nil {
		return err
	}
	h, err := t.rootHash()
	if err != nil {
		return err
	}
	if err := checkEqual("tree hash before", h, v.TreeHashBefore); err != nil {
		return err
	}
	p, err := UnmarshalProposal(v.Proposal)
	if err != nil {
		return err
	}
	switch p.Type {
	case ProposalTypeAdd:
		_, err = t.addLeaf(&p.Add.KeyPackage.LeafNode)
	case ProposalTypeUpdate:
		err = t.updateLeaf(v.ProposalSender, &p.Update.LeafNode)
	case ProposalTypeRemove:
		err = t.removeLeaf(p.Remove.Removed)
	default:
		err = fmt.Errorf("unexpected proposal type %d", p.Type)
	}
	if err != nil {
		return err
	}
	wire, err := t.wire()
	if err != nil {
		return err
	}
	after, err := wire.Marshal()
	if err != nil {
		return err
	}
	if err := checkEqual("tree after", after, v.TreeAfter); err != nil {
		return err
	}
	h, err = t.rootHash()
	if err != nil {
		return err
	}
	return checkEqual("tree hash after", h, v.TreeHashAfter)
}

// checkTreeKEMVector processes each UpdatePath as every other member, then
// creates a fresh UpdatePath from the same sender and has every other
// member process it. See RFC 9420, Sections 7.4 to 7.6.
func checkTreeKEMVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite             CipherSuite `json:"cipher_suite"`
		GroupID                 hexBytes    `json:"group_id"`
		Epoch                   uint64      `json:"epoch"`
		ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
		RatchetTree             hexBytes    `json:"ratchet_tree"`
		LeavesPrivate           []struct {
			Index          LeafIndex `json:"index"`
			EncryptionPriv hexBytes  `json:"encryption_priv"`
			SignaturePriv  hexBytes  `json:"signature_priv"`
			PathSecrets    []struct {
				Node       nodeIndex `json:"node"`
				PathSecret hexBytes  `json:"path_secret"`
			} `json:"path_secrets"`
		} `json:"leaves_private"`
		UpdatePaths []struct {
			Sender        LeafIndex  `json:"sender"`
			UpdatePath    hexBytes   `json:"update_path"`
			PathSecrets   []hexBytes `json:"path_secrets"`
			CommitSecret  hexBytes   `json:"commit_secret"`
			TreeHashAfter hexBytes   `json:"tree_hash_after"`
		} `json:"update_paths"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	tree, err := parseVectorTree(cs, v.RatchetTree)
	if err != nil {
		return err
	}
	groupContext := func(treeHash []byte) ([]byte, error) {
		gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: v.GroupID, Epoch: v.Epoch, TreeHash: treeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash}
		return gc.Marshal()
	}

	privs := make(map[LeafIndex]*treePrivateKeys)
	sigKeys := make(map[LeafIndex]*SignaturePrivateKey)
	for _, lp := range v.LeavesPrivate {
		key, err := cs.NewHPKEPrivateKey(lp.EncryptionPriv)
		if err != nil {
			return fmt.Errorf("leaf %d encryption key: %w", lp.Index, err)
		}
		leaf := tree.leaf(lp.Index)
		if leaf == nil || !slices.Equal(leaf.EncryptionKey, key.pub) {
			return fmt.Errorf("leaf %d: encryption_priv does not match the tree", lp.Index)
		}
		k := newTreePrivateKeys(lp.Index, key)
		for _, ps := range lp.PathSecrets {
			nk, err := cs.DeriveHPKEKey(cs.DeriveSecret(ps.PathSecret, "node"))
			if err != nil {
				return err
			}
			p := tree.parentNode(ps.Node)
			if p == nil || !slices.Equal(p.EncryptionKey, nk.pub) {
				return fmt.Errorf("leaf %d: path secret of node %d does not match the tree", lp.Index, ps.Node)
			}
			k.keys[ps.Node] = nk
		}
		privs[lp.Index] = k
		if sigKeys[lp.Index], err = cs.NewSignaturePrivateKey(lp.SignaturePriv); err != nil {
			return err
		}
	}

	for n, u := range v.UpdatePaths {
		path := new(UpdatePath)
		if err := unmarshal(u.UpdatePath, "UpdatePath", path.unmarshal); err != nil {
			return fmt.Errorf("update path %d: %w", n, err)
		}
		merged := tree.clone()
		if err := merged.applyUpdatePath(u.Sender, path, v.GroupID); err != nil {
			return fmt.Errorf("update path %d: %w", n, err)
		}
		h, err := merged.rootHash()
		if err != nil {
			return err
		}
		if err := checkEqual(fmt.Sprintf("update path %d: tree hash after", n), h, u.TreeHashAfter); err != nil {
			return err
		}
		for j, priv := range privs {
			if j == u.Sender {
				continue
			}
			got, err := tree.clone().processUpdatePath(u.Sender, path, v.GroupID, nil, priv, groupContext)
			if err != nil {
				return fmt.Errorf("update path %d as leaf %d: %w", n, j, err)
			}
			if int(j) >= len(u.PathSecrets) {
				return fmt.Errorf("update path %d: no path secret for leaf %d", n, j)
			}
			if err := checkEqual(fmt.Sprintf("update path %d: path secret of leaf %d", n, j), got.PathSecret, u.PathSecrets[j]); err != nil {
				return err
			}
			if err := checkEqual(fmt.Sprintf("update path %d: commit secret of leaf %d", n, j), got.CommitSecret, u.CommitSecret); err != nil {
				return err
			}
		}

		sigKey := sigKeys[u.Sender]
		if sigKey == nil {
			return fmt.Errorf("update path %d: no signature key for sender %d", n, u.Sender)
		}
		staged := tree.clone()
		created, err := staged.createUpdatePath(u.Sender, tree.leaf(u.Sender), sigKey, v.GroupID, nil, groupContext)
		if err != nil {
			return fmt.Errorf("update path %d: creating a new path: %w", n, err)
		}
		for j, priv := range privs {
			if j == u.Sender {
				continue
			}
			got, err := tree.clone().processUpdatePath(u.Sender, created.Path, v.GroupID, nil, priv, groupContext)
			if err != nil {
				return fmt.Errorf("update path %d: new path as leaf %d: %w", n, j, err)
			}
			if err := checkEqual(fmt.Sprintf("update path %d: new commit secret of leaf %d", n, j), got.CommitSecret, created.CommitSecret); err != nil {
				return err
			}
		}
	}
	if len(privs) == 0 {
		return errors.New("vector has no private leaves")
	}
	return nil
}
