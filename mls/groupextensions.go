package mls

import "golang.org/x/crypto/cryptobyte"

// This file holds the payloads of the extensions that RFC 9420 defines
// beyond ratchet_tree (see RatchetTree): Extension.Data of each type decodes
// with the matching Unmarshal function.

// ExternalSender is a party outside the group allowed to send proposals,
// named in messages by its index in the external_senders extension. See
// RFC 9420, Section 12.1.8.1.
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

func (e *ExternalSender) marshal(b *cryptobyte.Builder) {
	addOpaque(b, e.SignatureKey)
	e.Credential.marshal(b)
}

func (e *ExternalSender) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &e.SignatureKey) && e.Credential.unmarshal(s)
}

// ExternalSenders is the payload of the external_senders extension,
// ExternalSender external_senders<V>. See RFC 9420, Section 12.1.8.1.
type ExternalSenders []ExternalSender

func (e ExternalSenders) marshal(b *cryptobyte.Builder) {
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range e {
			e[i].marshal(b)
		}
	})
}

func (e *ExternalSenders) unmarshal(s *cryptobyte.String) bool {
	out := ExternalSenders{}
	ok := readVectorOf(s, func(s *cryptobyte.String) bool {
		var x ExternalSender
		if !x.unmarshal(s) {
			return false
		}
		out = append(out, x)
		return true
	})
	*e = out
	return ok
}

// Marshal returns the TLS encoding of the external_senders payload.
func (e ExternalSenders) Marshal() ([]byte, error) { return marshal(e.marshal) }

// UnmarshalExternalSenders decodes an external_senders payload, rejecting
// trailing bytes.
func UnmarshalExternalSenders(data []byte) (ExternalSenders, error) {
	var e ExternalSenders
	if err := unmarshal(data, "external_senders", e.unmarshal); err != nil {
		return nil, err
	}
	return e, nil
}

// RequiredCapabilities is the payload of the required_capabilities
// extension: what every member must support, beyond the defaults. See
// RFC 9420, Section 11.1.
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

func (r *RequiredCapabilities) marshal(b *cryptobyte.Builder) {
	addCodePoints(b, r.ExtensionTypes)
	addCodePoints(b, r.ProposalTypes)
	addCodePoints(b, r.CredentialTypes)
}

func (r *RequiredCapabilities) unmarshal(s *cryptobyte.String) bool {
	return readCodePoints(s, &r.ExtensionTypes) &&
		readCodePoints(s, &r.ProposalTypes) &&
		readCodePoints(s, &r.CredentialTypes)
}

// Marshal returns the TLS encoding of the required_capabilities payload.
func (r *RequiredCapabilities) Marshal() ([]byte, error) { return marshal(r.marshal) }

// UnmarshalRequiredCapabilities decodes a required_capabilities payload,
// rejecting trailing bytes.
func UnmarshalRequiredCapabilities(data []byte) (*RequiredCapabilities, error) {
	r := new(RequiredCapabilities)
	if err := unmarshal(data, "required_capabilities", r.unmarshal); err != nil {
		return nil, err
	}
	return r, nil
}

// ExternalPub is the payload of the external_pub GroupInfo extension: the
// HPKE public key to which an external joiner encrypts its init secret. See
// RFC 9420, Section 12.4.3.2.
type ExternalPub struct {
	ExternalPub []byte
}

func (e *ExternalPub) marshal(b *cryptobyte.Builder)       { addOpaque(b, e.ExternalPub) }
func (e *ExternalPub) unmarshal(s *cryptobyte.String) bool { return readOpaqueCopy(s, &e.ExternalPub) }

// Marshal returns the TLS encoding of the external_pub payload.
func (e *ExternalPub) Marshal() ([]byte, error) { return marshal(e.marshal) }

// UnmarshalExternalPub decodes an external_pub payload, rejecting trailing
// bytes.
func UnmarshalExternalPub(data []byte) (*ExternalPub, error) {
	e := new(ExternalPub)
	if err := unmarshal(data, "external_pub", e.unmarshal); err != nil {
		return nil, err
	}
	return e, nil
}
