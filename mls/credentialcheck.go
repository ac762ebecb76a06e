package mls

import (
	"errors"
	"fmt"
)

// CredentialValidator is the Authentication Service of RFC 9750, Section 4
// as MLS uses it (RFC 9420, Section 5.3.1): the application's decision that
// cred legitimately binds the identity it presents to signatureKey, and that
// this identity is acceptable to the application for the member in question.
// It returns nil to accept and an error, which the package wraps, to refuse.
//
// The package calls it for every credential it is about to trust: the leaf
// node of each KeyPackage (before an Add, and when receiving one), the leaf
// node of each Update proposal and UpdatePath, every leaf of the ratchet tree
// of a group being joined (by Welcome or external Commit), and each entry of
// an external_senders extension. It may be called concurrently from
// different groups and must not block on network round trips the user
// cannot see: an application that checks revocation online should cache.
//
// There is no default. The basic credential type carries an identity but
// proves nothing about it, so an implementation that accepts every basic
// credential lets any server or insider impersonate any user; the
// application must choose how to authenticate (for example, a key
// transparency lookup or a verified safety number for basic credentials,
// chain validation for x509). When a member replaces its credential, the
// application must also decide whether the new identity is a valid
// successor of the old one; that check belongs to the group code, which
// knows both.
type CredentialValidator func(cs CipherSuite, cred *Credential, signatureKey []byte) error

// AcceptAnyCredential is a CredentialValidator that accepts every
// credential without looking at it.
//
// WARNING: it authenticates nobody. With it, whoever can deliver a
// KeyPackage or a Commit can claim any identity. It exists for tests and
// examples only; never use it in a client.
func AcceptAnyCredential(CipherSuite, *Credential, []byte) error { return nil }

// validateExternalSenders checks the credential of every entry of an
// external_senders extension with validate, as RFC 9420, Section 5.3.1
// requires when the extension is added to a group or changed.
func validateExternalSenders(cs CipherSuite, senders ExternalSenders, validate CredentialValidator) error {
	if validate == nil {
		return errors.New("mls: no credential validator configured")
	}
	for i := range senders {
		s := &senders[i]
		if err := cs.ValidateSignaturePublicKey(s.SignatureKey); err != nil {
			return fmt.Errorf("mls: external sender %d: %w", i, err)
		}
		if err := validate(cs, &s.Credential, s.SignatureKey); err != nil {
			return fmt.Errorf("mls: external sender %d: credential rejected: %w", i, err)
		}
	}
	return nil
}
