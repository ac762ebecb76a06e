package mls

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"
)

// This file is both ends of a Welcome (RFC 9420, Section 12.4.3.1): the
// committer encrypts the GroupInfo under welcome_secret and the GroupSecrets
// to each new member's init key; a new member finds its entry, decrypts it,
// rebuilds the key schedule up to welcome_secret and decrypts the GroupInfo.
// Verifying the GroupInfo's signature needs the signer's leaf from the
// ratchet tree, and is left to the group code.

// ErrWelcomeNotForUs is returned by openWelcome when no EncryptedGroupSecrets
// of the Welcome names the KeyPackage it was given: the Welcome is for other
// members, or for another of this client's KeyPackages.
var ErrWelcomeNotForUs = errors.New("mls: welcome is not for this key package")

// PSKLookup returns the value of the pre-shared key that id names. The
// application supplies one for external PSKs (id.Type is PSKExternal) and
// the group code one for resumption PSKs (the resumption_psk of epoch
// id.Epoch of group id.GroupID). It returns an error when it does not hold
// the PSK; a joiner then cannot join. See RFC 9420, Section 8.4.
type PSKLookup func(id *PreSharedKeyID) ([]byte, error)

// resolvePSKSecret looks up each PSK that ids names and combines them into
// psk_secret. It refuses a nonce that is not KDF.Nh bytes long and a PSK
// that neither lookup provides. See RFC 9420, Sections 8.4 and 12.4.3.1.
func resolvePSKSecret(cs CipherSuite, ids []PreSharedKeyID, external, resumption PSKLookup) ([]byte, error) {
	psks := make([]pskWithSecret, 0, len(ids))
	for i := range ids {
		id := &ids[i]
		if len(id.Nonce) != cs.SecretSize() {
			return nil, fmt.Errorf("mls: PSK %d has a %d-byte nonce, suite %v needs %d", i, len(id.Nonce), cs, cs.SecretSize())
		}
		var lookup PSKLookup
		switch id.Type {
		case PSKExternal:
			lookup = external
		case PSKResumption:
			lookup = resumption
		default:
			return nil, fmt.Errorf("mls: PSK %d has unknown psktype %d", i, id.Type)
		}
		if lookup == nil {
			return nil, fmt.Errorf("mls: PSK %d (type %d) is required but no lookup for its type was given", i, id.Type)
		}
		psk, err := lookup(id)
		if err != nil {
			return nil, fmt.Errorf("mls: PSK %d: %w", i, err)
		}
		psks = append(psks, pskWithSecret{ID: *id, PSK: psk})
	}
	return pskSecret(cs, psks)
}

// encryptGroupInfo seals the encoded GroupInfo under welcome_key and
// welcome_nonce with empty additional data. See RFC 9420, Section 12.4.3.1.
func encryptGroupInfo(ws *welcomeSecret, gi *GroupInfo) ([]byte, error) {
	data, err := gi.Marshal()
	if err != nil {
		return nil, err
	}
	key, nonce := ws.keyNonce()
	aead, err := ws.cs.newAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nonce, data, nil), nil
}

// decryptGroupInfo opens encrypted_group_info with welcome_key and
// welcome_nonce and decodes the GroupInfo. See RFC 9420, Section 12.4.3.1.
func decryptGroupInfo(ws *welcomeSecret, encrypted []byte) (*GroupInfo, error) {
	key, nonce := ws.keyNonce()
	aead, err := ws.cs.newAEAD(key)
	if err != nil {
		return nil, err
	}
	data, err := aead.Open(nil, nonce, encrypted, nil)
	if err != nil {
		return nil, errors.New("mls: welcome's encrypted_group_info does not decrypt")
	}
	return UnmarshalGroupInfo(data)
}

// encryptGroupSecrets encrypts gs to the init key of kp, bound to the
// encrypted GroupInfo it accompanies:
// EncryptWithLabel(init_key, "Welcome", encrypted_group_info, GroupSecrets),
// addressed to new_member = KeyPackageRef. See RFC 9420, Section 12.4.3.1.
func encryptGroupSecrets(cs CipherSuite, kp *KeyPackage, gs *GroupSecrets, encryptedGroupInfo []byte) (EncryptedGroupSecrets, error) {
	if kp.CipherSuite != cs {
		return EncryptedGroupSecrets{}, fmt.Errorf("mls: key package is for suite %v, the group uses %v", kp.CipherSuite, cs)
	}
	ref, err := kp.Ref(cs)
	if err != nil {
		return EncryptedGroupSecrets{}, err
	}
	data, err := gs.Marshal()
	if err != nil {
		return EncryptedGroupSecrets{}, err
	}
	defer clear(data)
	ct, err := cs.EncryptWithLabel(kp.InitKey, "Welcome", encryptedGroupInfo, data)
	if err != nil {
		return EncryptedGroupSecrets{}, err
	}
	return EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: ct}, nil
}

// welcomeMember is one new member of a Welcome: its KeyPackage and, when the
// Commit had a path, the path secret of the lowest node its direct path
// shares with the committer's (nil otherwise).
type welcomeMember struct {
	KeyPackage *KeyPackage
	PathSecret []byte
}

// buildWelcome makes the Welcome of a Commit for the given new members. gi
// is the signed GroupInfo of the new epoch, joiner its joiner_secret, pskIDs
// the PSKs the Commit injected and pskSecret the psk_secret they combine to
// (nil when there are none). See RFC 9420, Section 12.4.3.1.
func buildWelcome(cs CipherSuite, gi *GroupInfo, joiner *joinerSecret, pskIDs []PreSharedKeyID, pskSecret []byte, members []welcomeMember) (*Welcome, error) {
	if len(members) == 0 {
		return nil, errors.New("mls: a welcome needs at least one new member")
	}
	if gi.GroupContext.CipherSuite != cs {
		return nil, fmt.Errorf("mls: GroupInfo is for suite %v, the welcome for %v", gi.GroupContext.CipherSuite, cs)
	}
	if joiner.cs != cs {
		return nil, fmt.Errorf("mls: joiner_secret is of suite %v, the welcome of %v", joiner.cs, cs)
	}
	encryptedGroupInfo, err := encryptGroupInfo(joiner.withPSK(pskSecret).welcome(), gi)
	if err != nil {
		return nil, err
	}
	w := &Welcome{CipherSuite: cs, EncryptedGroupInfo: encryptedGroupInfo}
	js := joiner.bytes()
	defer clear(js)
	for i, m := range members {
		gs := &GroupSecrets{JoinerSecret: js, PSKs: pskIDs}
		if gs.PSKs == nil {
			gs.PSKs = []PreSharedKeyID{}
		}
		if m.PathSecret != nil {
			gs.PathSecret = &PathSecret{PathSecret: m.PathSecret}
		}
		egs, err := encryptGroupSecrets(cs, m.KeyPackage, gs, encryptedGroupInfo)
		if err != nil {
			return nil, fmt.Errorf("mls: new member %d: %w", i, err)
		}
		for _, prev := range w.Secrets {
			if bytes.Equal(prev.NewMember, egs.NewMember) {
				return nil, fmt.Errorf("mls: new member %d: key package appears twice in the welcome", i)
			}
		}
		w.Secrets = append(w.Secrets, egs)
	}
	return w, nil
}

// openedWelcome is what a new member learns from a Welcome before it has the
// ratchet tree: the decrypted GroupSecrets, the GroupInfo (whose signature
// is not yet verified) and the key schedule of the new epoch up to the
// point where the GroupContext is needed.
type openedWelcome struct {
	Secrets   *GroupSecrets
	GroupInfo *GroupInfo
	// intermediate is KDF.Extract(joiner_secret, psk_secret); its epoch
	// method, under the encoded GroupInfo.GroupContext, gives the epoch's
	// secrets.
	intermediate *intermediateSecret
}

// openWelcome decrypts the part of w meant for kp with kp's init private
// key, derives welcome_secret from joiner_secret and the PSKs (looked up
// with external and resumption), and decrypts the GroupInfo. It checks that
// the Welcome and the GroupInfo are of kp's cipher suite and version. It
// returns ErrWelcomeNotForUs when w has no entry for kp.
//
// The caller must then verify the GroupInfo's signature with the signer's
// leaf of the ratchet tree, and its confirmation tag with the epoch's
// confirmation_key. See RFC 9420, Section 12.4.3.1.
func openWelcome(cs CipherSuite, w *Welcome, kp *KeyPackage, initPriv *HPKEPrivateKey, external, resumption PSKLookup) (*openedWelcome, error) {
	if kp.CipherSuite != cs {
		return nil, fmt.Errorf("mls: key package is for suite %v, not %v", kp.CipherSuite, cs)
	}
	if w.CipherSuite != cs {
		return nil, fmt.Errorf("mls: welcome is for suite %v, the key package for %v", w.CipherSuite, cs)
	}
	if !bytes.Equal(initPriv.pub, kp.InitKey) {
		return nil, errors.New("mls: init private key does not match the key package's init_key")
	}
	ref, err := kp.Ref(cs)
	if err != nil {
		return nil, err
	}
	var mine *EncryptedGroupSecrets
	for i := range w.Secrets {
		if hmac.Equal(w.Secrets[i].NewMember, ref) {
			mine = &w.Secrets[i]
			break
		}
	}
	if mine == nil {
		return nil, ErrWelcomeNotForUs
	}
	data, err := cs.DecryptWithLabel(initPriv, "Welcome", w.EncryptedGroupInfo, mine.EncryptedGroupSecrets)
	if err != nil {
		return nil, fmt.Errorf("mls: welcome's group secrets do not decrypt: %w", err)
	}
	gs, err := UnmarshalGroupSecrets(data)
	clear(data)
	if err != nil {
		return nil, err
	}
	joiner, err := newJoinerSecret(cs, gs.JoinerSecret)
	if err != nil {
		return nil, err
	}
	if gs.PathSecret != nil && len(gs.PathSecret.PathSecret) != cs.SecretSize() {
		return nil, fmt.Errorf("mls: welcome's path_secret is %d bytes, suite %v needs %d", len(gs.PathSecret.PathSecret), cs, cs.SecretSize())
	}
	pskSecret, err := resolvePSKSecret(cs, gs.PSKs, external, resumption)
	if err != nil {
		return nil, err
	}
	intermediate := joiner.withPSK(pskSecret)
	clear(pskSecret)
	gi, err := decryptGroupInfo(intermediate.welcome(), w.EncryptedGroupInfo)
	if err != nil {
		return nil, err
	}
	if gi.GroupContext.CipherSuite != cs {
		return nil, fmt.Errorf("mls: GroupInfo is for suite %v, the key package for %v", gi.GroupContext.CipherSuite, cs)
	}
	if gi.GroupContext.Version != ProtocolMLS10 {
		return nil, fmt.Errorf("mls: GroupInfo has unsupported version %d", gi.GroupContext.Version)
	}
	return &openedWelcome{Secrets: gs, GroupInfo: gi, intermediate: intermediate}, nil
}

// verifyConfirmationTag checks the GroupInfo's confirmation_tag, which must
// be MAC(confirmation_key, confirmed_transcript_hash) under the epoch's
// confirmation_key. See RFC 9420, Sections 8.2 and 12.4.3.1.
func verifyConfirmationTag(cs CipherSuite, epoch *EpochSecrets, gi *GroupInfo) error {
	if !cs.verifyMAC(epoch.confirmationKey(), gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return errors.New("mls: GroupInfo's confirmation tag is invalid")
	}
	return nil
}
