package mls

import (
	"encoding/json"
	"errors"
	"fmt"
)

// checkKeyScheduleVector checks the key schedule of RFC 9420, Section 8
// over a chain of epochs.
func checkKeyScheduleVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite       CipherSuite `json:"cipher_suite"`
		GroupID           hexBytes    `json:"group_id"`
		InitialInitSecret hexBytes    `json:"initial_init_secret"`
		Epochs            []struct {
			TreeHash                hexBytes `json:"tree_hash"`
			CommitSecret            hexBytes `json:"commit_secret"`
			PSKSecret               hexBytes `json:"psk_secret"`
			ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`

			GroupContext       hexBytes `json:"group_context"`
			JoinerSecret       hexBytes `json:"joiner_secret"`
			WelcomeSecret      hexBytes `json:"welcome_secret"`
			InitSecret         hexBytes `json:"init_secret"`
			SenderDataSecret   hexBytes `json:"sender_data_secret"`
			EncryptionSecret   hexBytes `json:"encryption_secret"`
			ExporterSecret     hexBytes `json:"exporter_secret"`
			EpochAuthenticator hexBytes `json:"epoch_authenticator"`
			ExternalSecret     hexBytes `json:"external_secret"`
			ConfirmationKey    hexBytes `json:"confirmation_key"`
			MembershipKey      hexBytes `json:"membership_key"`
			ResumptionPSK      hexBytes `json:"resumption_psk"`
			ExternalPub        hexBytes `json:"external_pub"`
			Exporter           struct {
				Label   string   `json:"label"`
				Context hexBytes `json:"context"`
				Length  int      `json:"length"`
				Secret  hexBytes `json:"secret"`
			} `json:"exporter"`
		} `json:"epochs"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	if len(v.Epochs) == 0 {
		return errors.New("vector has no epochs")
	}
	init := newInitSecret(cs, v.InitialInitSecret)
	for i, e := range v.Epochs {
		gc := &GroupContext{
			Version:                 ProtocolMLS10,
			CipherSuite:             cs,
			GroupID:                 v.GroupID,
			Epoch:                   uint64(i),
			TreeHash:                e.TreeHash,
			ConfirmedTranscriptHash: e.ConfirmedTranscriptHash,
		}
		gcBytes, err := gc.Marshal()
		if err != nil {
			return err
		}
		if err := checkEqual(fmt.Sprintf("epoch %d: group_context", i), gcBytes, e.GroupContext); err != nil {
			return err
		}
		joiner, err := init.joiner(e.CommitSecret, gcBytes)
		if err != nil {
			return err
		}
		// A member joining by Welcome starts from the joiner_secret alone.
		welcomed, err := newJoinerSecret(cs, joiner.bytes())
		if err != nil {
			return err
		}
		mid := joiner.withPSK(e.PSKSecret)
		secrets, err := mid.epoch(gcBytes)
		if err != nil {
			return err
		}
		welcomedSecrets, err := welcomed.withPSK(e.PSKSecret).epoch(gcBytes)
		if err != nil {
			return err
		}
		ext, err := secrets.ExternalPub()
		if err != nil {
			return err
		}
		exported, err := secrets.Export(e.Exporter.Label, e.Exporter.Context, e.Exporter.Length)
		if err != nil {
			return err
		}
		for _, c := range []struct {
			what      string
			got, want []byte
		}{
			{"joiner_secret", joiner.secret, e.JoinerSecret},
			{"welcome_secret", mid.welcome().secret, e.WelcomeSecret},
			{"init_secret", secrets.nextInit().secret, e.InitSecret},
			{"sender_data_secret", secrets.senderDataSecret(), e.SenderDataSecret},
			{"encryption_secret", secrets.encryptionSecret(), e.EncryptionSecret},
			{"exporter_secret", secrets.exporter, e.ExporterSecret},
			{"epoch_authenticator", secrets.EpochAuthenticator(), e.EpochAuthenticator},
			{"external_secret", secrets.external, e.ExternalSecret},
			{"confirmation_key", secrets.confirmationKey(), e.ConfirmationKey},
			{"membership_key", secrets.membershipKey(), e.MembershipKey},
			{"resumption_psk", secrets.resumptionPSK(), e.ResumptionPSK},
			{"external_pub", ext, e.ExternalPub},
			{"exporter.secret", exported, e.Exporter.Secret},
			{"epoch_authenticator via Welcome", welcomedSecrets.EpochAuthenticator(), e.EpochAuthenticator},
		} {
			if err := checkEqual(fmt.Sprintf("epoch %d: %s", i, c.what), c.got, c.want); err != nil {
				return err
			}
		}
		init = secrets.nextInit()
	}
	return nil
}

// checkPSKSecretVector checks the combination of external PSKs of RFC 9420,
// Section 8.4.
func checkPSKSecretVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		PSKs        []struct {
			ID    hexBytes `json:"psk_id"`
			PSK   hexBytes `json:"psk"`
			Nonce hexBytes `json:"psk_nonce"`
		} `json:"psks"`
		PSKSecret hexBytes `json:"psk_secret"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	psks := make([]pskWithSecret, len(v.PSKs))
	for i, p := range v.PSKs {
		psks[i] = pskWithSecret{ID: PreSharedKeyID{Type: PSKExternal, ID: p.ID, Nonce: p.Nonce}, PSK: p.PSK}
	}
	got, err := pskSecret(cs, psks)
	if err != nil {
		return err
	}
	return checkEqual("psk_secret", got, v.PSKSecret)
}

// checkSecretTreeVector checks the sender data keys of RFC 9420,
// Section 6.3.2 and the secret tree of Section 9.
func checkSecretTreeVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		SenderData  struct {
			Secret     hexBytes `json:"sender_data_secret"`
			Ciphertext hexBytes `json:"ciphertext"`
			Key        hexBytes `json:"key"`
			Nonce      hexBytes `json:"nonce"`
		} `json:"sender_data"`
		EncryptionSecret hexBytes `json:"encryption_secret"`
		Leaves           [][]struct {
			Generation       uint32   `json:"generation"`
			HandshakeKey     hexBytes `json:"handshake_key"`
			HandshakeNonce   hexBytes `json:"handshake_nonce"`
			ApplicationKey   hexBytes `json:"application_key"`
			ApplicationNonce hexBytes `json:"application_nonce"`
		} `json:"leaves"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	key, nonce := senderDataKeyNonce(cs, v.SenderData.Secret, v.SenderData.Ciphertext)
	if err := checkEqual("sender_data key", key, v.SenderData.Key); err != nil {
		return err
	}
	if err := checkEqual("sender_data nonce", nonce, v.SenderData.Nonce); err != nil {
		return err
	}
	// One receiver takes the leaves in order with get, another in reverse
	// order with peek and consume; both must find the vector's keys.
	tree := newSecretTree(cs, v.EncryptionSecret, uint32(len(v.Leaves)))
	reverse := newSecretTree(cs, v.EncryptionSecret, uint32(len(v.Leaves)))
	for i := len(v.Leaves) - 1; i >= 0; i-- {
		for _, g := range v.Leaves[i] {
			for _, c := range []struct {
				rt         ratchetType
				key, nonce []byte
			}{
				{ratchetApplication, g.ApplicationKey, g.ApplicationNonce},
				{ratchetHandshake, g.HandshakeKey, g.HandshakeNonce},
			} {
				k, err := reverse.peek(LeafIndex(i), c.rt, g.Generation)
				if err != nil {
					return err
				}
				what := fmt.Sprintf("peek: leaf %d %v generation %d", i, c.rt, g.Generation)
				if err := checkEqual(what+" key", k.key, c.key); err != nil {
					return err
				}
				if err := checkEqual(what+" nonce", k.nonce, c.nonce); err != nil {
					return err
				}
				if err := reverse.consume(LeafIndex(i), c.rt, g.Generation); err != nil {
					return err
				}
			}
		}
	}
	for i, gens := range v.Leaves {
		leaf := LeafIndex(i)
		for _, g := range gens {
			for _, c := range []struct {
				rt         ratchetType
				key, nonce []byte
			}{
				{ratchetHandshake, g.HandshakeKey, g.HandshakeNonce},
				{ratchetApplication, g.ApplicationKey, g.ApplicationNonce},
			} {
				k, err := tree.get(leaf, c.rt, g.Generation)
				if err != nil {
					return err
				}
				what := fmt.Sprintf("leaf %d %v generation %d", i, c.rt, g.Generation)
				if err := checkEqual(what+" key", k.key, c.key); err != nil {
					return err
				}
				if err := checkEqual(what+" nonce", k.nonce, c.nonce); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
