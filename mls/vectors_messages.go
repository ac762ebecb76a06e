package mls

import (
	"encoding/json"
	"fmt"
)

// checkMessagesVector checks that every structure of the messages vector
// decodes and re-encodes to the same bytes. See RFC 9420, Sections 6, 7,
// 10 and 12.
func checkMessagesVector(raw json.RawMessage) error {
	var v map[string]hexBytes
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	for _, c := range []struct {
		field string
		value wireCodec
	}{
		{"mls_welcome", new(MLSMessage)},
		{"mls_group_info", new(MLSMessage)},
		{"mls_key_package", new(MLSMessage)},
		{"ratchet_tree", new(RatchetTree)},
		{"group_secrets", new(GroupSecrets)},
		{"add_proposal", new(AddProposal)},
		{"update_proposal", new(UpdateProposal)},
		{"remove_proposal", new(RemoveProposal)},
		{"pre_shared_key_proposal", new(PreSharedKeyProposal)},
		{"re_init_proposal", new(ReInitProposal)},
		{"external_init_proposal", new(ExternalInitProposal)},
		{"group_context_extensions_proposal", new(GroupContextExtensionsProposal)},
		{"commit", new(Commit)},
		{"public_message_application", new(MLSMessage)},
		{"public_message_proposal", new(MLSMessage)},
		{"public_message_commit", new(MLSMessage)},
		{"private_message", new(MLSMessage)},
	} {
		data, ok := v[c.field]
		if !ok {
			return fmt.Errorf("%s: missing from the vector", c.field)
		}
		if err := unmarshal(data, c.field, c.value.unmarshal); err != nil {
			return err
		}
		out, err := marshal(c.value.marshal)
		if err != nil {
			return fmt.Errorf("%s: re-encoding: %w", c.field, err)
		}
		if err := checkEqual(c.field+" re-encoded", out, data); err != nil {
			return err
		}
	}
	return checkMessageWireFormats(v)
}

// checkMessageWireFormats checks that each MLSMessage of the messages vector
// carries the wire format and content type its field names.
func checkMessageWireFormats(v map[string]hexBytes) error {
	for _, c := range []struct {
		field string
		wf    WireFormat
		ct    ContentType
	}{
		{"mls_welcome", WireFormatWelcome, 0},
		{"mls_group_info", WireFormatGroupInfo, 0},
		{"mls_key_package", WireFormatKeyPackage, 0},
		{"public_message_application", WireFormatPublicMessage, ContentTypeApplication},
		{"public_message_proposal", WireFormatPublicMessage, ContentTypeProposal},
		{"public_message_commit", WireFormatPublicMessage, ContentTypeCommit},
		{"private_message", WireFormatPrivateMessage, 0},
	} {
		m, err := UnmarshalMLSMessage(v[c.field])
		if err != nil {
			return err
		}
		if m.WireFormat != c.wf {
			return fmt.Errorf("%s: wire format %d, want %d", c.field, m.WireFormat, c.wf)
		}
		if c.ct != 0 && m.PublicMessage.Content.ContentType != c.ct {
			return fmt.Errorf("%s: content type %d, want %d", c.field, m.PublicMessage.Content.ContentType, c.ct)
		}
	}
	return nil
}
