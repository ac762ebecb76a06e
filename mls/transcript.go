package mls

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// confirmedTranscriptHashInput encodes ConfirmedTranscriptHashInput: the
// wire format, the commit's FramedContent and its signature. See RFC 9420,
// Section 8.2.
func confirmedTranscriptHashInput(ac *AuthenticatedContent) ([]byte, error) {
	if ac.Content.ContentType != ContentTypeCommit {
		return nil, errors.New("mls: transcript hashes cover only commits")
	}
	return marshal(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(ac.WireFormat))
		ac.Content.marshal(b)
		addOpaque(b, ac.Auth.Signature)
	})
}

// confirmedTranscriptHash is Hash(interim_transcript_hash_[epoch-1] ||
// ConfirmedTranscriptHashInput_[epoch]). See RFC 9420, Section 8.2.
func (cs CipherSuite) confirmedTranscriptHash(interimBefore []byte, ac *AuthenticatedContent) ([]byte, error) {
	input, err := confirmedTranscriptHashInput(ac)
	if err != nil {
		return nil, err
	}
	return cs.hash(append(append([]byte(nil), interimBefore...), input...)), nil
}

// interimTranscriptHash is Hash(confirmed_transcript_hash_[epoch] ||
// InterimTranscriptHashInput_[epoch]), the input being the commit's
// confirmation tag. See RFC 9420, Section 8.2.
func (cs CipherSuite) interimTranscriptHash(confirmed, confirmationTag []byte) []byte {
	input := append([]byte(nil), confirmed...)
	input = append(input, appendVarint(nil, uint64(len(confirmationTag)))...)
	return cs.hash(append(input, confirmationTag...))
}

// confirmationTag is MAC(confirmation_key, confirmed_transcript_hash).
// See RFC 9420, Section 6.1.
func (cs CipherSuite) confirmationTag(confirmationKey, confirmedTranscriptHash []byte) []byte {
	return cs.mac(confirmationKey, confirmedTranscriptHash)
}
