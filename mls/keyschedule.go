package mls

import (
	"crypto/rand"
	"fmt"
)

// This file is the key schedule of RFC 9420, Section 8. Each stage of the
// derivation has its own type, so that the only way to an epoch's secrets is
// through every stage in order:
//
//	initSecret --joiner(commit_secret, GroupContext)--> joinerSecret
//	joinerSecret --withPSK(psk_secret)--> intermediateSecret
//	intermediateSecret --welcome()--> welcomeSecret
//	intermediateSecret --epoch(GroupContext)--> EpochSecrets
//	EpochSecrets --nextInit()--> initSecret (of the next epoch)
//
// A member joining by Welcome starts from newJoinerSecret with the
// joiner_secret of its GroupSecrets. Every stage copies the secrets it is
// given, keeps them in unexported fields and never compares them with ==.
// Once a stage has been used to derive the next one, the caller drops it:
// these values are consumed in the sense of Section 9.2.

// initSecret is init_secret_[n-1], the secret carried from one epoch to the
// next (or chosen at random for a new group, or received by external init).
type initSecret struct {
	cs     CipherSuite
	secret []byte
}

// newInitSecret wraps an init_secret, such as the one derived by external
// initialization (Section 8.3). It copies secret.
func newInitSecret(cs CipherSuite, secret []byte) *initSecret {
	return &initSecret{cs: cs, secret: append([]byte(nil), secret...)}
}

// newRandomInitSecret returns a fresh random init_secret of KDF.Nh bytes, the
// first input of the key schedule of a new group. See RFC 9420, Section 11.
func newRandomInitSecret(cs CipherSuite) (*initSecret, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	s := make([]byte, cs.SecretSize())
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	return &initSecret{cs: cs, secret: s}, nil
}

// zeroSecret is the "0" of RFC 9420, Section 8: KDF.Nh zero bytes.
func (cs CipherSuite) zeroSecret() []byte { return make([]byte, cs.SecretSize()) }

// joiner derives joiner_secret from this init_secret, the epoch's
// commit_secret and the encoded GroupContext of the new epoch. A nil
// commitSecret stands for the all-zero commit_secret of a Commit without a
// path. See RFC 9420, Section 8.
func (s *initSecret) joiner(commitSecret, groupContext []byte) (*joinerSecret, error) {
	if commitSecret == nil {
		commitSecret = s.cs.zeroSecret()
	}
	prk := s.cs.Extract(s.secret, commitSecret)
	js, err := s.cs.ExpandWithLabel(prk, "joiner", groupContext, s.cs.SecretSize())
	if err != nil {
		return nil, err
	}
	return &joinerSecret{cs: s.cs, secret: js}, nil
}

// joinerSecret is the joiner_secret of an epoch: what the committer sends to
// new members in GroupSecrets. See RFC 9420, Sections 8 and 12.4.3.1.
type joinerSecret struct {
	cs     CipherSuite
	secret []byte
}

// newJoinerSecret wraps the joiner_secret received in a Welcome's
// GroupSecrets. It copies secret and refuses one of the wrong size.
func newJoinerSecret(cs CipherSuite, secret []byte) (*joinerSecret, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(secret) != cs.SecretSize() {
		return nil, fmt.Errorf("mls: joiner_secret is %d bytes, suite %v needs %d", len(secret), cs, cs.SecretSize())
	}
	return &joinerSecret{cs: cs, secret: append([]byte(nil), secret...)}, nil
}

// bytes returns a copy of joiner_secret, for encrypting it into the
// GroupSecrets of a Welcome.
func (j *joinerSecret) bytes() []byte { return append([]byte(nil), j.secret...) }

// withPSK mixes psk_secret (see pskSecret) into joiner_secret. A nil
// pskSecret stands for the all-zero psk_secret of an epoch without PSKs.
// See RFC 9420, Section 8.
func (j *joinerSecret) withPSK(pskSecret []byte) *intermediateSecret {
	if pskSecret == nil {
		pskSecret = j.cs.zeroSecret()
	}
	return &intermediateSecret{cs: j.cs, secret: j.cs.Extract(j.secret, pskSecret)}
}

// intermediateSecret is KDF.Extract(joiner_secret, psk_secret), the unnamed
// value of the RFC 9420, Section 8 figure from which both welcome_secret and
// epoch_secret are derived.
type intermediateSecret struct {
	cs     CipherSuite
	secret []byte
}

// welcome derives welcome_secret. See RFC 9420, Section 8.
func (m *intermediateSecret) welcome() *welcomeSecret {
	return &welcomeSecret{cs: m.cs, secret: m.cs.DeriveSecret(m.secret, "welcome")}
}

// welcomeSecret is the welcome_secret of an epoch, which encrypts the
// GroupInfo of a Welcome. See RFC 9420, Section 12.4.3.1.
type welcomeSecret struct {
	cs     CipherSuite
	secret []byte
}

// keyNonce returns welcome_key and welcome_nonce. See RFC 9420,
// Section 12.4.3.1.
func (w *welcomeSecret) keyNonce() (key, nonce []byte) {
	key = w.cs.mustExpandWithLabel(w.secret, "key", nil, w.cs.KeySize())
	nonce = w.cs.mustExpandWithLabel(w.secret, "nonce", nil, w.cs.NonceSize())
	return key, nonce
}

// epoch derives epoch_secret under the encoded GroupContext of the new epoch,
// and from it every secret of the epoch. epoch_secret itself is not kept.
// See RFC 9420, Section 8.
func (m *intermediateSecret) epoch(groupContext []byte) (*EpochSecrets, error) {
	cs := m.cs
	es, err := cs.ExpandWithLabel(m.secret, "epoch", groupContext, cs.SecretSize())
	if err != nil {
		return nil, err
	}
	defer clear(es)
	return &EpochSecrets{
		cs:            cs,
		senderData:    cs.DeriveSecret(es, "sender data"),
		encryption:    cs.DeriveSecret(es, "encryption"),
		exporter:      cs.DeriveSecret(es, "exporter"),
		external:      cs.DeriveSecret(es, "external"),
		confirmation:  cs.DeriveSecret(es, "confirm"),
		membership:    cs.DeriveSecret(es, "membership"),
		resumption:    cs.DeriveSecret(es, "resumption"),
		authenticator: cs.DeriveSecret(es, "authentication"),
		init:          cs.DeriveSecret(es, "init"),
	}, nil
}

// EpochSecrets holds the secrets derived from one epoch's epoch_secret.
// See RFC 9420, Section 8, Table 4.
type EpochSecrets struct {
	cs            CipherSuite
	senderData    []byte // sender_data_secret
	encryption    []byte // encryption_secret, the root of the secret tree
	exporter      []byte // exporter_secret
	external      []byte // external_secret
	confirmation  []byte // confirmation_key
	membership    []byte // membership_key
	resumption    []byte // resumption_psk
	authenticator []byte // epoch_authenticator
	init          []byte // init_secret_[n]
}

// The accessors below return the secret itself, not a copy: callers inside
// the package must not modify it.

func (e *EpochSecrets) senderDataSecret() []byte { return e.senderData }
func (e *EpochSecrets) encryptionSecret() []byte { return e.encryption }
func (e *EpochSecrets) confirmationKey() []byte  { return e.confirmation }
func (e *EpochSecrets) membershipKey() []byte    { return e.membership }

// resumptionPSK returns resumption_psk, the PSK that a later epoch, a
// reinitialized group or a branch injects to prove membership in this epoch.
// See RFC 9420, Section 8.6.
func (e *EpochSecrets) resumptionPSK() []byte { return e.resumption }

// nextInit returns init_secret_[n], the input of the next epoch's key
// schedule.
func (e *EpochSecrets) nextInit() *initSecret { return newInitSecret(e.cs, e.init) }

// secretTree returns a fresh secret tree rooted at encryption_secret for a
// ratchet tree of leafCount leaves. See RFC 9420, Section 9.
func (e *EpochSecrets) secretTree(leafCount uint32) *secretTree {
	return newSecretTree(e.cs, e.encryption, leafCount)
}

// EpochAuthenticator returns the epoch_authenticator, a value that members
// with the same view of the group share and can compare out of band to
// detect impersonation. See RFC 9420, Section 8.7.
func (e *EpochSecrets) EpochAuthenticator() []byte {
	return append([]byte(nil), e.authenticator...)
}

// Export is MLS-Exporter(Label, Context, Length): a secret of length bytes
// for use outside MLS, bound to this epoch, to label and to context.
// Applications should use a label registered for their purpose.
// See RFC 9420, Section 8.5.
func (e *EpochSecrets) Export(label string, context []byte, length int) ([]byte, error) {
	derived, err := e.cs.ExpandWithLabel(e.exporter, label, nil, e.cs.SecretSize())
	if err != nil {
		return nil, err
	}
	return e.cs.ExpandWithLabel(derived, "exported", e.cs.hash(context), length)
}

// externalKey returns the external key pair, derived from external_secret,
// whose private key the whole group holds so that non-members can join by
// external Commit. See RFC 9420, Sections 8 and 8.3.
func (e *EpochSecrets) externalKey() (*HPKEPrivateKey, error) {
	return e.cs.DeriveHPKEKey(e.external)
}

// ExternalPub returns external_pub, the public key published in the
// external_pub extension of a GroupInfo. See RFC 9420, Section 8.
func (e *EpochSecrets) ExternalPub() ([]byte, error) {
	k, err := e.externalKey()
	if err != nil {
		return nil, err
	}
	return k.PublicKey(), nil
}
