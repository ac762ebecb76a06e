package mls

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// messagesVectors returns the cases of the official messages.json, found as
// vectorDir finds it, or nil when the vectors are absent (the fuzz targets
// then start from the hand-built samples alone).
func messagesVectors(f *testing.F) []map[string]hexBytes {
	f.Helper()
	dir := os.Getenv("MLS_TEST_VECTORS")
	required := dir != ""
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "mls-test-vectors")
	}
	data, err := os.ReadFile(filepath.Join(dir, "messages.json"))
	if err != nil {
		if required {
			f.Fatal(err)
		}
		return nil
	}
	var cases []map[string]hexBytes
	if err := json.Unmarshal(data, &cases); err != nil {
		f.Fatal(err)
	}
	return cases
}

// vectorSeeds returns the named fields of every messages vector, each
// passed through conv (which may return nil to drop a seed).
func vectorSeeds(f *testing.F, conv func(field string, data []byte) []byte, fields ...string) [][]byte {
	var out [][]byte
	for _, c := range messagesVectors(f) {
		for _, field := range fields {
			if s := conv(field, c[field]); s != nil {
				out = append(out, s)
			}
		}
	}
	return out
}

func asIs(_ string, data []byte) []byte { return data }

// mlsMessageBody strips the version and wire format of an MLSMessage.
func mlsMessageBody(_ string, data []byte) []byte {
	if len(data) < 4 {
		return nil
	}
	return data[4:]
}

// sampleSeeds returns the encodings of the hand-built samples called name.
func sampleSeeds(f *testing.F, name string) [][]byte {
	var out [][]byte
	for _, c := range wireCases() {
		if c.name != name {
			continue
		}
		data, err := marshal(c.value.marshal)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// fuzzWire checks that whatever fresh's type decodes, it re-encodes to the
// same bytes, and that the decoded value does not alias its input.
func fuzzWire(f *testing.F, what string, fresh func() wireCodec, seeds ...[][]byte) {
	for _, list := range seeds {
		for _, s := range list {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := bytes.Clone(data)
		v := fresh()
		if unmarshal(buf, what, v.unmarshal) != nil {
			return
		}
		for i := range buf {
			buf[i] ^= 0xff
		}
		out, err := marshal(v.marshal)
		if err != nil {
			t.Fatalf("decoded %s does not re-encode: %v", what, err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%s re-encodes differently:\ngot  %x\nwant %x", what, out, data)
		}
	})
}

func FuzzMLSMessage(f *testing.F) {
	fuzzWire(f, "MLSMessage", func() wireCodec { return new(MLSMessage) },
		sampleSeeds(f, "MLSMessage"),
		vectorSeeds(f, asIs, "mls_welcome", "mls_group_info", "mls_key_package",
			"public_message_application", "public_message_proposal", "public_message_commit", "private_message"))
}

// proposalTypes gives the type of each proposal body in the messages vector.
var proposalTypes = map[string]ProposalType{
	"add_proposal":                      ProposalTypeAdd,
	"update_proposal":                   ProposalTypeUpdate,
	"remove_proposal":                   ProposalTypeRemove,
	"pre_shared_key_proposal":           ProposalTypePSK,
	"re_init_proposal":                  ProposalTypeReInit,
	"external_init_proposal":            ProposalTypeExternalInit,
	"group_context_extensions_proposal": ProposalTypeGroupContextExtensions,
}

func FuzzProposal(f *testing.F) {
	fields := make([]string, 0, len(proposalTypes))
	for field := range proposalTypes {
		fields = append(fields, field)
	}
	fuzzWire(f, "Proposal", func() wireCodec { return new(Proposal) },
		sampleSeeds(f, "Proposal"),
		vectorSeeds(f, func(field string, data []byte) []byte {
			t := proposalTypes[field]
			return append([]byte{byte(t >> 8), byte(t)}, data...)
		}, fields...))
}

func FuzzCommit(f *testing.F) {
	fuzzWire(f, "Commit", func() wireCodec { return new(Commit) },
		sampleSeeds(f, "Commit"), vectorSeeds(f, asIs, "commit"))
}

func FuzzKeyPackage(f *testing.F) {
	fuzzWire(f, "KeyPackage", func() wireCodec { return new(KeyPackage) },
		sampleSeeds(f, "KeyPackage"), vectorSeeds(f, mlsMessageBody, "mls_key_package"), vectorSeeds(f, asIs, "add_proposal"))
}

func FuzzLeafNode(f *testing.F) {
	fuzzWire(f, "LeafNode", func() wireCodec { return new(LeafNode) },
		sampleSeeds(f, "LeafNode"), vectorSeeds(f, asIs, "update_proposal"))
}

func FuzzGroupInfo(f *testing.F) {
	fuzzWire(f, "GroupInfo", func() wireCodec { return new(GroupInfo) },
		sampleSeeds(f, "GroupInfo"), vectorSeeds(f, mlsMessageBody, "mls_group_info"))
}

func FuzzWelcome(f *testing.F) {
	fuzzWire(f, "Welcome", func() wireCodec { return new(Welcome) },
		sampleSeeds(f, "Welcome"), vectorSeeds(f, mlsMessageBody, "mls_welcome"))
}

func FuzzGroupSecrets(f *testing.F) {
	fuzzWire(f, "GroupSecrets", func() wireCodec { return new(GroupSecrets) },
		sampleSeeds(f, "GroupSecrets"), vectorSeeds(f, asIs, "group_secrets"))
}

func FuzzRatchetTree(f *testing.F) {
	fuzzWire(f, "RatchetTree", func() wireCodec { return new(RatchetTree) },
		sampleSeeds(f, "RatchetTree"), vectorSeeds(f, asIs, "ratchet_tree"))
}

// publicToAuthenticated turns a PublicMessage MLSMessage into the
// AuthenticatedContent it carries.
func publicToAuthenticated(_ string, data []byte) []byte {
	m, err := UnmarshalMLSMessage(data)
	if err != nil || m.PublicMessage == nil {
		return nil
	}
	out, err := (&AuthenticatedContent{WireFormat: m.WireFormat, Content: m.PublicMessage.Content, Auth: m.PublicMessage.Auth}).Marshal()
	if err != nil {
		return nil
	}
	return out
}

func FuzzAuthenticatedContent(f *testing.F) {
	fuzzWire(f, "AuthenticatedContent", func() wireCodec { return new(AuthenticatedContent) },
		sampleSeeds(f, "AuthenticatedContent"),
		vectorSeeds(f, publicToAuthenticated, "public_message_application", "public_message_proposal", "public_message_commit"))
}

// framedContentBody is the select (content_type) body of a FramedContent
// after a content type byte, the shape in which PrivateMessageContent
// carries it.
type framedContentBody struct{ FramedContent }

func (c *framedContentBody) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(c.ContentType))
	c.marshalContent(b)
}

func (c *framedContentBody) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint8((*uint8)(&c.ContentType)) && c.unmarshalContent(s)
}

func FuzzFramedContentBody(f *testing.F) {
	var seeds [][]byte
	for _, c := range sampleFramedContents() {
		data, err := marshal((&framedContentBody{c}).marshal)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	fuzzWire(f, "FramedContent body", func() wireCodec { return new(framedContentBody) }, seeds,
		vectorSeeds(f, func(_ string, data []byte) []byte { return append([]byte{byte(ContentTypeCommit)}, data...) }, "commit"))
}

// groupContextOf returns the GroupContext inside a GroupInfo MLSMessage.
func groupContextOf(_ string, data []byte) []byte {
	m, err := UnmarshalMLSMessage(data)
	if err != nil || m.GroupInfo == nil {
		return nil
	}
	out, err := m.GroupInfo.GroupContext.Marshal()
	if err != nil {
		return nil
	}
	return out
}

func FuzzGroupContext(f *testing.F) {
	fuzzWire(f, "GroupContext", func() wireCodec { return new(GroupContext) },
		sampleSeeds(f, "GroupContext"), vectorSeeds(f, groupContextOf, "mls_group_info"))
}

func FuzzExtensions(f *testing.F) {
	fuzzWire(f, "Extensions", func() wireCodec { return new(Extensions) },
		[][]byte{{0x00}, {0x04, 0x0a, 0x0a, 0x00, 0x00}},
		vectorSeeds(f, asIs, "group_context_extensions_proposal"))
}

func FuzzCredential(f *testing.F) {
	fuzzWire(f, "Credential", func() wireCodec { return new(Credential) },
		sampleSeeds(f, "Credential"), [][]byte{{0x00, 0x01, 0x03, 'b', 'o', 'b'}})
}

func FuzzExternalSenders(f *testing.F) {
	full, err := ExternalSenders{{SignatureKey: []byte{1, 2}, Credential: Credential{Type: CredentialBasic, Identity: []byte("x")}}}.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	fuzzWire(f, "external_senders", func() wireCodec { return new(ExternalSenders) },
		sampleSeeds(f, "ExternalSenders"), [][]byte{full})
}

func FuzzRequiredCapabilities(f *testing.F) {
	fuzzWire(f, "required_capabilities", func() wireCodec { return new(RequiredCapabilities) },
		sampleSeeds(f, "RequiredCapabilities"))
}
