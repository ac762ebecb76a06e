package mls

import (
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// checkTreeMathVector checks the tree arithmetic of RFC 9420, Appendix C.
func checkTreeMathVector(raw json.RawMessage) error {
	var v struct {
		NLeaves uint32    `json:"n_leaves"`
		NNodes  uint32    `json:"n_nodes"`
		Root    uint32    `json:"root"`
		Left    []*uint32 `json:"left"`
		Right   []*uint32 `json:"right"`
		Parent  []*uint32 `json:"parent"`
		Sibling []*uint32 `json:"sibling"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	n := v.NLeaves
	if got := nodeWidth(n); got != v.NNodes {
		return fmt.Errorf("node width: got %d, want %d", got, v.NNodes)
	}
	if got := root(n); uint32(got) != v.Root {
		return fmt.Errorf("root: got %d, want %d", got, v.Root)
	}
	if len(v.Left) != int(v.NNodes) || len(v.Right) != int(v.NNodes) || len(v.Parent) != int(v.NNodes) || len(v.Sibling) != int(v.NNodes) {
		return errors.New("vector arrays do not have n_nodes entries")
	}
	for i := uint32(0); i < v.NNodes; i++ {
		x := nodeIndex(i)
		var left, right, parent, sibling *uint32
		if !x.isLeaf() {
			l, r := uint32(x.left()), uint32(x.right())
			left, right = &l, &r
		}
		if x != root(n) {
			p, s := uint32(x.parent(n)), uint32(x.sibling(n))
			parent, sibling = &p, &s
		}
		for _, c := range []struct {
			what      string
			got, want *uint32
		}{{"left", left, v.Left[i]}, {"right", right, v.Right[i]}, {"parent", parent, v.Parent[i]}, {"sibling", sibling, v.Sibling[i]}} {
			if (c.got == nil) != (c.want == nil) || (c.got != nil && *c.got != *c.want) {
				return fmt.Errorf("%s(%d) in a tree of %d leaves: got %v, want %v", c.what, i, n, optString(c.got), optString(c.want))
			}
		}
	}
	return nil
}

func optString(p *uint32) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// checkCryptoBasicsVector checks the labeled operations of RFC 9420,
// Section 5.
func checkCryptoBasicsVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		RefHash     struct {
			Label string   `json:"label"`
			Value hexBytes `json:"value"`
			Out   hexBytes `json:"out"`
		} `json:"ref_hash"`
		ExpandWithLabel struct {
			Secret  hexBytes `json:"secret"`
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Out     hexBytes `json:"out"`
		} `json:"expand_with_label"`
		DeriveSecret struct {
			Secret hexBytes `json:"secret"`
			Label  string   `json:"label"`
			Out    hexBytes `json:"out"`
		} `json:"derive_secret"`
		DeriveTreeSecret struct {
			Secret     hexBytes `json:"secret"`
			Label      string   `json:"label"`
			Generation uint32   `json:"generation"`
			Length     int      `json:"length"`
			Out        hexBytes `json:"out"`
		} `json:"derive_tree_secret"`
		SignWithLabel struct {
			Priv      hexBytes `json:"priv"`
			Pub       hexBytes `json:"pub"`
			Content   hexBytes `json:"content"`
			Label     string   `json:"label"`
			Signature hexBytes `json:"signature"`
		} `json:"sign_with_label"`
		EncryptWithLabel struct {
			Priv       hexBytes `json:"priv"`
			Pub        hexBytes `json:"pub"`
			Label      string   `json:"label"`
			Context    hexBytes `json:"context"`
			Plaintext  hexBytes `json:"plaintext"`
			KEMOutput  hexBytes `json:"kem_output"`
			Ciphertext hexBytes `json:"ciphertext"`
		} `json:"encrypt_with_label"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}

	out, err := cs.RefHash(v.RefHash.Label, v.RefHash.Value)
	if err != nil {
		return err
	}
	if err := checkEqual("RefHash", out, v.RefHash.Out); err != nil {
		return err
	}

	e := v.ExpandWithLabel
	if out, err = cs.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length); err != nil {
		return err
	}
	if err := checkEqual("ExpandWithLabel", out, e.Out); err != nil {
		return err
	}

	if err := checkEqual("DeriveSecret", cs.DeriveSecret(v.DeriveSecret.Secret, v.DeriveSecret.Label), v.DeriveSecret.Out); err != nil {
		return err
	}

	d := v.DeriveTreeSecret
	if out, err = cs.DeriveTreeSecret(d.Secret, d.Label, d.Generation, d.Length); err != nil {
		return err
	}
	if err := checkEqual("DeriveTreeSecret", out, d.Out); err != nil {
		return err
	}

	s := v.SignWithLabel
	if err := cs.VerifyWithLabel(s.Pub, s.Label, s.Content, s.Signature); err != nil {
		return fmt.Errorf("VerifyWithLabel of the vector's signature: %w", err)
	}
	sk, err := cs.NewSignaturePrivateKey(s.Priv)
	if err != nil {
		return err
	}
	if err := checkEqual("signature public key from private", sk.PublicKey(), s.Pub); err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(sk, s.Label, s.Content)
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(s.Pub, s.Label, s.Content, sig); err != nil {
		return fmt.Errorf("VerifyWithLabel of our own signature: %w", err)
	}
	if cs.VerifyWithLabel(s.Pub, s.Label+"x", s.Content, sig) == nil {
		return errors.New("VerifyWithLabel accepted a signature under another label")
	}

	h := v.EncryptWithLabel
	hk, err := cs.NewHPKEPrivateKey(h.Priv)
	if err != nil {
		return err
	}
	if err := checkEqual("HPKE public key from private", hk.PublicKey(), h.Pub); err != nil {
		return err
	}
	pt, err := cs.DecryptWithLabel(hk, h.Label, h.Context, HPKECiphertext{KEMOutput: h.KEMOutput, Ciphertext: h.Ciphertext})
	if err != nil {
		return fmt.Errorf("DecryptWithLabel of the vector's ciphertext: %w", err)
	}
	if err := checkEqual("DecryptWithLabel", pt, h.Plaintext); err != nil {
		return err
	}
	ct, err := cs.EncryptWithLabel(h.Pub, h.Label, h.Context, h.Plaintext)
	if err != nil {
		return err
	}
	if pt, err = cs.DecryptWithLabel(hk, h.Label, h.Context, ct); err != nil {
		return fmt.Errorf("DecryptWithLabel of our own ciphertext: %w", err)
	}
	return checkEqual("EncryptWithLabel round trip", pt, h.Plaintext)
}

// checkDeserializationVector checks the variable-length integer of RFC 9420,
// Section 2.1.2, both ways.
func checkDeserializationVector(raw json.RawMessage) error {
	var v struct {
		Header hexBytes `json:"vlbytes_header"`
		Length uint64   `json:"length"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	s := cryptobyte.String(v.Header)
	got, err := parseVarint(&s)
	if err != nil {
		return err
	}
	if !s.Empty() {
		return fmt.Errorf("%d bytes left after the header", len(s))
	}
	if got != v.Length {
		return fmt.Errorf("length: got %d, want %d", got, v.Length)
	}
	return checkEqual("re-encoded header", appendVarint(nil, got), v.Header)
}
