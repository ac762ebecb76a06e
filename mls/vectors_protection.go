package mls

import (
	"encoding/json"
	"errors"
	"fmt"
)

// checkTranscriptHashesVector checks the transcript hashes and confirmation
// tag of RFC 9420, Section 8.2.
func checkTranscriptHashesVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite          CipherSuite `json:"cipher_suite"`
		ConfirmationKey      hexBytes    `json:"confirmation_key"`
		AuthenticatedContent hexBytes    `json:"authenticated_content"`
		InterimBefore        hexBytes    `json:"interim_transcript_hash_before"`
		ConfirmedAfter       hexBytes    `json:"confirmed_transcript_hash_after"`
		InterimAfter         hexBytes    `json:"interim_transcript_hash_after"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	ac, err := UnmarshalAuthenticatedContent(v.AuthenticatedContent)
	if err != nil {
		return err
	}
	if ac.Content.ContentType != ContentTypeCommit {
		return errors.New("authenticated_content does not hold a commit")
	}
	if !cs.verifyMAC(v.ConfirmationKey, v.ConfirmedAfter, ac.Auth.ConfirmationTag) {
		return errors.New("confirmation tag does not verify")
	}
	confirmed, err := cs.confirmedTranscriptHash(v.InterimBefore, ac)
	if err != nil {
		return err
	}
	if err := checkEqual("confirmed_transcript_hash", confirmed, v.ConfirmedAfter); err != nil {
		return err
	}
	return checkEqual("interim_transcript_hash", cs.interimTranscriptHash(confirmed, ac.Auth.ConfirmationTag), v.InterimAfter)
}

// checkMessageProtectionVector checks PublicMessage and PrivateMessage
// protection both ways. See RFC 9420, Section 6.
func checkMessageProtectionVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite             CipherSuite `json:"cipher_suite"`
		GroupID                 hexBytes    `json:"group_id"`
		Epoch                   uint64      `json:"epoch"`
		TreeHash                hexBytes    `json:"tree_hash"`
		ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
		SignaturePriv           hexBytes    `json:"signature_priv"`
		SignaturePub            hexBytes    `json:"signature_pub"`
		EncryptionSecret        hexBytes    `json:"encryption_secret"`
		SenderDataSecret        hexBytes    `json:"sender_data_secret"`
		MembershipKey           hexBytes    `json:"membership_key"`
		Proposal                hexBytes    `json:"proposal"`
		ProposalPub             hexBytes    `json:"proposal_pub"`
		ProposalPriv            hexBytes    `json:"proposal_priv"`
		Commit                  hexBytes    `json:"commit"`
		CommitPub               hexBytes    `json:"commit_pub"`
		CommitPriv              hexBytes    `json:"commit_priv"`
		Application             hexBytes    `json:"application"`
		ApplicationPriv         hexBytes    `json:"application_priv"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	gc := GroupContext{Version: ProtocolMLS10, CipherSuite: cs, GroupID: v.GroupID, Epoch: v.Epoch, TreeHash: v.TreeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash}
	gcBytes, err := gc.Marshal()
	if err != nil {
		return err
	}
	sk, err := cs.NewSignaturePrivateKey(p521Scalar(cs, v.SignaturePriv))
	if err != nil {
		return err
	}
	newProtection := func() *epochProtection {
		return &epochProtection{
			suite: cs, groupID: v.GroupID, epoch: v.Epoch, groupContext: gcBytes,
			senderDataSecret: v.SenderDataSecret, membershipKey: v.MembershipKey,
			tree: newSecretTree(cs, v.EncryptionSecret, 2),
		}
	}
	// open unprotects one serialized MLSMessage and checks its signature.
	open := func(p *epochProtection, data []byte) (*AuthenticatedContent, error) {
		m, err := UnmarshalMLSMessage(data)
		if err != nil {
			return nil, err
		}
		var ac *AuthenticatedContent
		switch {
		case m.PublicMessage != nil:
			ac, err = p.unprotectPublic(m.PublicMessage)
		case m.PrivateMessage != nil:
			ac, err = p.unprotectPrivate(m.PrivateMessage)
		default:
			return nil, fmt.Errorf("wire format %d is not a framed message", m.WireFormat)
		}
		if err != nil {
			return nil, err
		}
		if ac.Content.Sender != (Sender{Type: SenderMember, Leaf: 1}) {
			return nil, fmt.Errorf("sender: got %+v, want member 1", ac.Content.Sender)
		}
		if err := cs.verifyContent(v.SignaturePub, ac, gcBytes); err != nil {
			return nil, err
		}
		return ac, nil
	}
	// seal signs content for wire format wf and protects it.
	seal := func(p *epochProtection, wf WireFormat, content FramedContent, tag []byte) ([]byte, error) {
		sig, err := cs.signContent(sk, wf, &content, gcBytes)
		if err != nil {
			return nil, err
		}
		ac := &AuthenticatedContent{WireFormat: wf, Content: content, Auth: FramedContentAuthData{Signature: sig, ConfirmationTag: tag}}
		m := &MLSMessage{Version: ProtocolMLS10, WireFormat: wf}
		if wf == WireFormatPublicMessage {
			m.PublicMessage, err = p.protectPublic(ac)
		} else {
			m.PrivateMessage, err = p.protectPrivate(ac, 32)
		}
		if err != nil {
			return nil, err
		}
		return m.Marshal()
	}
	body := func(ac *AuthenticatedContent) ([]byte, error) {
		switch ac.Content.ContentType {
		case ContentTypeProposal:
			return marshal(ac.Content.Proposal.marshal)
		case ContentTypeCommit:
			return marshal(ac.Content.Commit.marshal)
		}
		return ac.Content.ApplicationData, nil
	}

	for _, c := range []struct {
		name      string
		raw       []byte
		pub, priv []byte
	}{
		{"proposal", v.Proposal, v.ProposalPub, v.ProposalPriv},
		{"commit", v.Commit, v.CommitPub, v.CommitPriv},
		{"application", v.Application, nil, v.ApplicationPriv},
	} {
		var received []*AuthenticatedContent
		if c.pub != nil {
			ac, err := open(newProtection(), c.pub)
			if err != nil {
				return fmt.Errorf("%s_pub: %w", c.name, err)
			}
			received = append(received, ac)
		}
		ac, err := open(newProtection(), c.priv)
		if err != nil {
			return fmt.Errorf("%s_priv: %w", c.name, err)
		}
		received = append(received, ac)
		for _, ac := range received {
			got, err := body(ac)
			if err != nil {
				return err
			}
			if err := checkEqual(c.name+" content", got, c.raw); err != nil {
				return err
			}
		}

		content := received[0].Content
		tag := received[0].Auth.ConfirmationTag
		sealed, err := seal(newProtection(), WireFormatPublicMessage, content, tag)
		if c.name == "application" {
			if err == nil {
				return errors.New("application data was protected as a PublicMessage")
			}
		} else {
			if err != nil {
				return fmt.Errorf("protect %s as PublicMessage: %w", c.name, err)
			}
			if _, err := open(newProtection(), sealed); err != nil {
				return fmt.Errorf("unprotect our %s PublicMessage: %w", c.name, err)
			}
		}
		if sealed, err = seal(newProtection(), WireFormatPrivateMessage, content, tag); err != nil {
			return fmt.Errorf("protect %s as PrivateMessage: %w", c.name, err)
		}
		ac, err = open(newProtection(), sealed)
		if err != nil {
			return fmt.Errorf("unprotect our %s PrivateMessage: %w", c.name, err)
		}
		got, err := body(ac)
		if err != nil {
			return err
		}
		if err := checkEqual(c.name+" round trip", got, c.raw); err != nil {
			return err
		}
	}
	return nil
}
