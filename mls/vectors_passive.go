package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// checkPassiveClientVector joins a group by Welcome and follows its epochs
// through the public API, comparing the epoch authenticators. The
// KeyPackages of the official vectors have expired, so the clock is set
// inside their lifetime rather than disabling the check. See the
// "Passive Client Scenarios" of the vectors' test-vectors.md.
func checkPassiveClientVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite  CipherSuite `json:"cipher_suite"`
		ExternalPSKs []struct {
			ID  hexBytes `json:"psk_id"`
			PSK hexBytes `json:"psk"`
		} `json:"external_psks"`
		KeyPackage     hexBytes  `json:"key_package"`
		SignaturePriv  hexBytes  `json:"signature_priv"`
		EncryptionPriv hexBytes  `json:"encryption_priv"`
		InitPriv       hexBytes  `json:"init_priv"`
		Welcome        hexBytes  `json:"welcome"`
		RatchetTree    *hexBytes `json:"ratchet_tree"`
		InitialAuth    hexBytes  `json:"initial_epoch_authenticator"`
		Epochs         []struct {
			Proposals []hexBytes `json:"proposals"`
			Commit    hexBytes   `json:"commit"`
			Auth      hexBytes   `json:"epoch_authenticator"`
		} `json:"epochs"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	kpMsg, err := UnmarshalMLSMessage(v.KeyPackage)
	if err != nil {
		return err
	}
	kp := kpMsg.KeyPackage
	if kp == nil {
		return errors.New("key_package is not an mls_key_package")
	}
	wMsg, err := UnmarshalMLSMessage(v.Welcome)
	if err != nil {
		return err
	}
	if wMsg.Welcome == nil {
		return errors.New("welcome is not an mls_welcome")
	}
	for _, k := range []*hexBytes{&v.SignaturePriv, &v.EncryptionPriv, &v.InitPriv} {
		*k = p521Scalar(cs, *k)
	}
	sigKey, err := cs.NewSignaturePrivateKey(v.SignaturePriv)
	if err != nil {
		return err
	}
	initKey, err := cs.NewHPKEPrivateKey(v.InitPriv)
	if err != nil {
		return err
	}
	encKey, err := cs.NewHPKEPrivateKey(v.EncryptionPriv)
	if err != nil {
		return err
	}
	if !bytes.Equal(initKey.pub, kp.InitKey) || !bytes.Equal(encKey.pub, kp.LeafNode.EncryptionKey) || !bytes.Equal(sigKey.pub, kp.LeafNode.SignatureKey) {
		return errors.New("private keys do not match the key package")
	}
	if kp.LeafNode.Lifetime == nil {
		return errors.New("key package leaf has no lifetime")
	}
	now := time.Unix(int64(kp.LeafNode.Lifetime.NotBefore)+1, 0)
	cfg := Config{
		Clock:              func() time.Time { return now },
		ValidateCredential: AcceptAnyCredential,
		ExternalPSKs: func(id *PreSharedKeyID) ([]byte, error) {
			for _, p := range v.ExternalPSKs {
				if bytes.Equal(p.ID, id.ID) {
					return p.PSK, nil
				}
			}
			return nil, fmt.Errorf("no external PSK %x", id.ID)
		},
	}
	var tree RatchetTree
	if v.RatchetTree != nil {
		if tree, err = UnmarshalRatchetTree(*v.RatchetTree); err != nil {
			return err
		}
	}
	secrets := &KeyPackageSecrets{CipherSuite: cs, InitKey: initKey, EncryptionKey: encKey, SignatureKey: sigKey.PublicKey()}
	g, err := JoinFromWelcome(cfg, wMsg.Welcome, kp, secrets, sigKey, tree)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := checkEqual("initial epoch_authenticator", g.EpochAuthenticator(), v.InitialAuth); err != nil {
		return err
	}
	for i, e := range v.Epochs {
		for j, p := range e.Proposals {
			msg, err := UnmarshalMLSMessage(p)
			if err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
			if _, err := g.Process(msg); err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
		}
		msg, err := UnmarshalMLSMessage(e.Commit)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if _, err := g.Process(msg); err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if err := checkEqual(fmt.Sprintf("epoch %d epoch_authenticator", i), g.EpochAuthenticator(), e.Auth); err != nil {
			return err
		}
	}
	return nil
}
