package mls

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// The samples below are built as the decoders return values: opaque fields
// and lists of structures non-nil (empty when empty), an empty Extensions
// nil, and absent selected fields nil.

func sampleLeafNode(src LeafNodeSource) LeafNode {
	n := LeafNode{
		EncryptionKey: []byte{0x01, 0x02, 0x03},
		SignatureKey:  []byte{0x04, 0x05},
		Credential:    Credential{Type: CredentialBasic, Identity: []byte("alice")},
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{ProtocolMLS10},
			CipherSuites: []CipherSuite{1, 0x0a0a},
			Extensions:   []ExtensionType{0x1a1a},
			Proposals:    []ProposalType{},
			Credentials:  []CredentialType{CredentialBasic, 0x2a2a},
		},
		Source:     src,
		Extensions: Extensions{{Type: 0x3a3a, Data: []byte{}}},
		Signature:  bytes.Repeat([]byte{0x5a}, 64),
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		n.Lifetime = &Lifetime{NotBefore: 1, NotAfter: 1 << 40}
	case LeafNodeSourceCommit:
		n.ParentHash = bytes.Repeat([]byte{0x77}, 32)
		n.Credential = Credential{Type: CredentialX509, Certificates: [][]byte{{0x30, 0x01}, {}}}
	}
	return n
}

func sampleKeyPackage() KeyPackage {
	return KeyPackage{
		Version:     ProtocolMLS10,
		CipherSuite: 1,
		InitKey:     bytes.Repeat([]byte{0x11}, 32),
		LeafNode:    sampleLeafNode(LeafNodeSourceKeyPackage),
		Signature:   []byte{0x99},
	}
}

func sampleGroupContext() GroupContext {
	senders, err := ExternalSenders{{SignatureKey: []byte{1}, Credential: Credential{Type: CredentialBasic, Identity: []byte("ds")}}}.Marshal()
	if err != nil {
		panic(err)
	}
	return GroupContext{
		Version:                 ProtocolMLS10,
		CipherSuite:             2,
		GroupID:                 []byte("group"),
		Epoch:                   7,
		TreeHash:                bytes.Repeat([]byte{0x22}, 32),
		ConfirmedTranscriptHash: []byte{},
		Extensions:              Extensions{{Type: ExtensionExternalSenders, Data: senders}},
	}
}

func sampleProposals() []Proposal {
	kp := sampleKeyPackage()
	return []Proposal{
		{Type: ProposalTypeAdd, Add: &AddProposal{KeyPackage: kp}},
		{Type: ProposalTypeUpdate, Update: &UpdateProposal{LeafNode: sampleLeafNode(LeafNodeSourceUpdate)}},
		{Type: ProposalTypeRemove, Remove: &RemoveProposal{Removed: 5}},
		{Type: ProposalTypePSK, PreSharedKey: &PreSharedKeyProposal{PSK: PreSharedKeyID{Type: PSKExternal, ID: []byte("psk"), Nonce: []byte{1, 2}}}},
		{Type: ProposalTypePSK, PreSharedKey: &PreSharedKeyProposal{PSK: PreSharedKeyID{Type: PSKResumption, Usage: ResumptionBranch, GroupID: []byte("g"), Epoch: 3, Nonce: []byte{}}}},
		{Type: ProposalTypeReInit, ReInit: &ReInitProposal{GroupID: []byte("new"), Version: ProtocolMLS10, CipherSuite: 3}},
		{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInitProposal{KEMOutput: bytes.Repeat([]byte{0x33}, 32)}},
		{Type: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: Extensions{{Type: ExtensionApplicationID, Data: []byte("app")}, {Type: 0xeaea, Data: []byte{0}}}}},
	}
}

func sampleCommit() Commit {
	p := sampleProposals()[2]
	return Commit{
		Proposals: []ProposalOrRef{
			{Type: ProposalOrRefProposal, Proposal: &p},
			{Type: ProposalOrRefReference, Reference: bytes.Repeat([]byte{0x44}, 32)},
		},
		Path: &UpdatePath{
			LeafNode: sampleLeafNode(LeafNodeSourceCommit),
			Nodes: []UpdatePathNode{
				{EncryptionKey: []byte{0x55}, EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte{1}, Ciphertext: []byte{2, 3}}}},
				{EncryptionKey: []byte{0x66}, EncryptedPathSecret: []HPKECiphertext{}},
			},
		},
	}
}

func sampleGroupInfo() GroupInfo {
	return GroupInfo{
		GroupContext:    sampleGroupContext(),
		Extensions:      Extensions{{Type: ExtensionExternalPub, Data: []byte{0x00}}},
		ConfirmationTag: bytes.Repeat([]byte{0x88}, 32),
		Signer:          3,
		Signature:       []byte{0x01},
	}
}

func sampleWelcome() Welcome {
	return Welcome{
		CipherSuite: 1,
		Secrets: []EncryptedGroupSecrets{
			{NewMember: bytes.Repeat([]byte{0x12}, 32), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: []byte{1}, Ciphertext: []byte{2}}},
		},
		EncryptedGroupInfo: bytes.Repeat([]byte{0x34}, 100),
	}
}

func sampleFramedContents() []FramedContent {
	props := sampleProposals()
	commit := sampleCommit()
	return []FramedContent{
		{GroupID: []byte("g"), Epoch: 1, Sender: Sender{Type: SenderMember, Leaf: 2}, AuthenticatedData: []byte{}, ContentType: ContentTypeApplication, ApplicationData: []byte("hello")},
		{GroupID: []byte("g"), Epoch: 1, Sender: Sender{Type: SenderExternal, ExternalIndex: 1}, AuthenticatedData: []byte("ad"), ContentType: ContentTypeProposal, Proposal: &props[2]},
		{GroupID: []byte("g"), Epoch: 1, Sender: Sender{Type: SenderNewMemberProposal}, AuthenticatedData: []byte{}, ContentType: ContentTypeProposal, Proposal: &props[0]},
		{GroupID: []byte("g"), Epoch: 1, Sender: Sender{Type: SenderNewMemberCommit}, AuthenticatedData: []byte{}, ContentType: ContentTypeCommit, Commit: &commit},
		{GroupID: []byte("g"), Epoch: 1 << 60, Sender: Sender{Type: SenderMember, Leaf: 0}, AuthenticatedData: []byte{}, ContentType: ContentTypeCommit, Commit: &Commit{Proposals: []ProposalOrRef{}}},
	}
}

func sampleAuth(ct ContentType) FramedContentAuthData {
	a := FramedContentAuthData{Signature: bytes.Repeat([]byte{0xab}, 64)}
	if ct == ContentTypeCommit {
		a.ConfirmationTag = bytes.Repeat([]byte{0xcd}, 32)
	}
	return a
}

func samplePublicMessage(c FramedContent) *PublicMessage {
	m := &PublicMessage{Content: c, Auth: sampleAuth(c.ContentType)}
	if c.Sender.Type == SenderMember {
		m.MembershipTag = bytes.Repeat([]byte{0xef}, 32)
	}
	return m
}

func sampleMLSMessages() []*MLSMessage {
	var out []*MLSMessage
	for _, c := range sampleFramedContents() {
		out = append(out, &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: samplePublicMessage(c)})
	}
	w, gi, kp := sampleWelcome(), sampleGroupInfo(), sampleKeyPackage()
	return append(out,
		&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: &PrivateMessage{
			GroupID: []byte("g"), Epoch: 9, ContentType: ContentTypeApplication, AuthenticatedData: []byte{},
			EncryptedSenderData: bytes.Repeat([]byte{1}, 28), Ciphertext: bytes.Repeat([]byte{2}, 80),
		}},
		&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatWelcome, Welcome: &w},
		&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: &gi},
		&MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: &kp},
	)
}

func sampleRatchetTree() RatchetTree {
	a, b := sampleLeafNode(LeafNodeSourceKeyPackage), sampleLeafNode(LeafNodeSourceCommit)
	return RatchetTree{
		{Type: NodeTypeLeaf, Leaf: &a},
		{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte{9}, ParentHash: []byte{}, UnmergedLeaves: []LeafIndex{0, 2}}},
		nil,
		nil,
		{Type: NodeTypeLeaf, Leaf: &b},
	}
}

func sampleGroupSecrets() []*GroupSecrets {
	return []*GroupSecrets{
		{JoinerSecret: bytes.Repeat([]byte{0x01}, 32), PSKs: []PreSharedKeyID{}},
		{JoinerSecret: []byte{0x02}, PathSecret: &PathSecret{PathSecret: []byte{0x03}}, PSKs: []PreSharedKeyID{
			{Type: PSKExternal, ID: []byte("id"), Nonce: []byte{4}},
			{Type: PSKResumption, Usage: ResumptionApplication, GroupID: []byte{}, Epoch: 0, Nonce: []byte{5}},
		}},
	}
}

// wireCase is one value to round-trip: fresh returns an empty value of the
// same type to decode into.
type wireCase struct {
	name  string
	value wireCodec
	fresh func() wireCodec
}

func wireCases() []wireCase {
	var cases []wireCase
	add := func(name string, v wireCodec, fresh func() wireCodec) {
		cases = append(cases, wireCase{name, v, fresh})
	}
	for _, p := range sampleProposals() {
		add("Proposal", &p, func() wireCodec { return new(Proposal) })
	}
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		n := sampleLeafNode(src)
		add("LeafNode", &n, func() wireCodec { return new(LeafNode) })
	}
	kp := sampleKeyPackage()
	add("KeyPackage", &kp, func() wireCodec { return new(KeyPackage) })
	c := sampleCommit()
	add("Commit", &c, func() wireCodec { return new(Commit) })
	add("Commit", &Commit{Proposals: []ProposalOrRef{}}, func() wireCodec { return new(Commit) })
	gi := sampleGroupInfo()
	add("GroupInfo", &gi, func() wireCodec { return new(GroupInfo) })
	gc := sampleGroupContext()
	add("GroupContext", &gc, func() wireCodec { return new(GroupContext) })
	w := sampleWelcome()
	add("Welcome", &w, func() wireCodec { return new(Welcome) })
	for _, g := range sampleGroupSecrets() {
		add("GroupSecrets", g, func() wireCodec { return new(GroupSecrets) })
	}
	t := sampleRatchetTree()
	add("RatchetTree", &t, func() wireCodec { return new(RatchetTree) })
	for _, m := range sampleMLSMessages() {
		add("MLSMessage", m, func() wireCodec { return new(MLSMessage) })
	}
	for _, fc := range sampleFramedContents() {
		ac := &AuthenticatedContent{WireFormat: WireFormatPrivateMessage, Content: fc, Auth: sampleAuth(fc.ContentType)}
		add("AuthenticatedContent", ac, func() wireCodec { return new(AuthenticatedContent) })
	}
	add("Credential", &Credential{Type: CredentialX509, Certificates: [][]byte{}}, func() wireCodec { return new(Credential) })
	add("ExternalSenders", &ExternalSenders{}, func() wireCodec { return new(ExternalSenders) })
	add("RequiredCapabilities", &RequiredCapabilities{
		ExtensionTypes: []ExtensionType{ExtensionExternalSenders}, ProposalTypes: []ProposalType{}, CredentialTypes: []CredentialType{0x0a0a},
	}, func() wireCodec { return new(RequiredCapabilities) })
	add("ExternalPub", &ExternalPub{ExternalPub: []byte{1, 2}}, func() wireCodec { return new(ExternalPub) })
	return cases
}

func TestWireRoundTrip(t *testing.T) {
	for _, c := range wireCases() {
		t.Run(c.name, func(t *testing.T) {
			enc, err := marshal(c.value.marshal)
			if err != nil {
				t.Fatal(err)
			}
			got := c.fresh()
			if err := unmarshal(enc, c.name, got.unmarshal); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.value) {
				t.Errorf("decoded value differs:\ngot  %+v\nwant %+v", got, c.value)
			}
			again, err := marshal(got.marshal)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs:\ngot  %x\nwant %x", again, enc)
			}

			// No strict prefix is a complete encoding: every field is framed.
			for n := range len(enc) {
				if unmarshal(enc[:n], c.name, c.fresh().unmarshal) == nil {
					t.Errorf("truncated to %d of %d bytes: decoded", n, len(enc))
				}
			}
			err = unmarshal(append(enc[:len(enc):len(enc)], 0), c.name, c.fresh().unmarshal)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("with a trailing byte: got %v, want a ParseError", err)
			}
		})
	}
}

// TestWireNoAliasing checks that decoded values do not share memory with the
// buffer they were decoded from.
func TestWireNoAliasing(t *testing.T) {
	for _, c := range wireCases() {
		enc, err := marshal(c.value.marshal)
		if err != nil {
			t.Fatal(err)
		}
		buf := bytes.Clone(enc)
		got := c.fresh()
		if err := unmarshal(buf, c.name, got.unmarshal); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] ^= 0xff
		}
		again, err := marshal(got.marshal)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, enc) {
			t.Errorf("%s: decoded value changed with its input buffer", c.name)
		}
	}
}

// build returns the bytes that f writes, for hand-made malformed inputs.
func build(t *testing.T, f func(b *cryptobyte.Builder)) []byte {
	t.Helper()
	out, err := marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWireRejects(t *testing.T) {
	kp := sampleKeyPackage()
	leaf := sampleLeafNode(LeafNodeSourceUpdate)
	leafBytes := build(t, leaf.marshal)
	gi := sampleGroupInfo()
	giBytes := build(t, gi.marshal)
	pm := samplePublicMessage(sampleFramedContents()[0])

	for _, c := range []struct {
		name  string
		fresh func() wireCodec
		data  []byte
	}{
		{"non-minimal varint", func() wireCodec { return new(GroupSecrets) },
			[]byte{0x40, 0x01, 0xaa, 0x00, 0x00}},
		{"non-minimal varint in MLSMessage", func() wireCodec { return new(MLSMessage) },
			[]byte{0x00, 0x01, 0x00, 0x02, 0x40, 0x01, 'g', 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x00}},
		{"optional byte 2 in Commit", func() wireCodec { return new(Commit) }, []byte{0x00, 0x02}},
		{"optional byte 2 in GroupSecrets", func() wireCodec { return new(GroupSecrets) }, []byte{0x01, 0xaa, 0x02, 0x00}},
		{"optional byte 2 in RatchetTree", func() wireCodec { return new(RatchetTree) }, []byte{0x01, 0x02}},
		{"unknown proposal type", func() wireCodec { return new(Proposal) }, []byte{0x00, 0x08, 0x00, 0x00, 0x00, 0x01}},
		{"GREASE proposal type", func() wireCodec { return new(Proposal) }, []byte{0x0a, 0x0a, 0x00}},
		{"reserved proposal type", func() wireCodec { return new(Proposal) }, []byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x01}},
		{"duplicate extension", func() wireCodec { return new(GroupContextExtensionsProposal) },
			[]byte{0x08, 0x00, 0x01, 0x01, 0xaa, 0x00, 0x01, 0x01, 0xbb}},
		{"duplicate extension in KeyPackage", func() wireCodec { return new(KeyPackage) }, build(t, func(b *cryptobyte.Builder) {
			b.AddUint16(1)
			b.AddUint16(1)
			addOpaque(b, kp.InitKey)
			kp.LeafNode.marshal(b)
			Extensions{{Type: 0x0a0a, Data: []byte{}}, {Type: 0x0b0b, Data: []byte{}}, {Type: 0x0a0a, Data: []byte{1}}}.marshal(b)
			addOpaque(b, kp.Signature)
		})},
		{"unknown credential type", func() wireCodec { return new(Credential) }, []byte{0x00, 0x03, 0x00}},
		{"unknown ProposalOrRef type", func() wireCodec { return new(Commit) }, []byte{0x02, 0x03, 0x00, 0x00}},
		{"unknown leaf_node_source", func() wireCodec { return new(LeafNode) }, func() []byte {
			b := bytes.Clone(leafBytes)
			// The source byte follows the keys, credential and capabilities.
			i := bytes.Index(b, build(t, leaf.Capabilities.marshal)) + len(build(t, leaf.Capabilities.marshal))
			b[i] = 4
			return b
		}()},
		{"unknown node_type", func() wireCodec { return new(RatchetTree) }, build(t, func(b *cryptobyte.Builder) {
			addVector(b, func(b *cryptobyte.Builder) {
				b.AddUint8(1)
				b.AddUint8(3)
				b.AddBytes(leafBytes)
			})
		})},
		{"trailing blank node", func() wireCodec { return new(RatchetTree) }, []byte{0x01, 0x00}},
		{"empty ratchet tree", func() wireCodec { return new(RatchetTree) }, []byte{0x00}},
		{"MLSMessage version 2", func() wireCodec { return new(MLSMessage) }, append([]byte{0x00, 0x02, 0x00, 0x04}, giBytes...)},
		{"MLSMessage version 0", func() wireCodec { return new(MLSMessage) }, append([]byte{0x00, 0x00, 0x00, 0x04}, giBytes...)},
		{"unknown wire format", func() wireCodec { return new(MLSMessage) }, append([]byte{0x00, 0x01, 0x00, 0x06}, giBytes...)},
		{"unknown sender type", func() wireCodec { return new(PublicMessage) }, func() []byte {
			b := build(t, pm.marshal)
			b[1+len(pm.Content.GroupID)+8] = 5
			return b
		}()},
		{"unknown content type", func() wireCodec { return new(PublicMessage) }, func() []byte {
			b := build(t, pm.marshal)
			b[1+len(pm.Content.GroupID)+8+5+1] = 4
			return b
		}()},
		{"unknown content type in PrivateMessage", func() wireCodec { return new(PrivateMessage) },
			[]byte{0x01, 'g', 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x00, 0x00, 0x00}},
		{"odd-length capabilities list", func() wireCodec { return new(RequiredCapabilities) }, []byte{0x01, 0x00, 0x00, 0x00}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := unmarshal(c.data, c.name, c.fresh().unmarshal)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("got %v, want a ParseError", err)
			}
		})
	}
}

func TestUnmarshalCredentialUnknownType(t *testing.T) {
	_, err := UnmarshalCredential([]byte{0x00, 0x03, 0x00})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Reason != "unknown credential type 0x0003" {
		t.Errorf("got %v, want a ParseError naming the unknown type", err)
	}
}

func TestWireMarshalRejects(t *testing.T) {
	for _, c := range []struct {
		name  string
		value wireCodec
	}{
		{"unknown credential type", &Credential{Type: 3}},
		{"proposal without body", &Proposal{Type: ProposalTypeAdd}},
		{"proposal of unknown type", &Proposal{Type: 0x0a0a}},
		{"key_package leaf without lifetime", &LeafNode{Source: LeafNodeSourceKeyPackage, Credential: Credential{Type: CredentialBasic}}},
		{"node without content", &Node{Type: NodeTypeParent}},
		{"all-blank ratchet tree", &RatchetTree{nil}},
		{"MLSMessage version 2", &MLSMessage{Version: 2, WireFormat: WireFormatWelcome, Welcome: &Welcome{}}},
		{"MLSMessage without body", &MLSMessage{Version: ProtocolMLS10, WireFormat: WireFormatWelcome}},
		{"unknown sender type", &Sender{Type: 9}},
		{"membership tag for external sender", &PublicMessage{
			Content:       FramedContent{Sender: Sender{Type: SenderExternal}, ContentType: ContentTypeApplication},
			MembershipTag: []byte{1},
		}},
		{"commit content without commit", &FramedContent{Sender: Sender{Type: SenderMember}, ContentType: ContentTypeCommit}},
	} {
		if _, err := marshal(c.value.marshal); err == nil {
			t.Errorf("%s: encoded", c.name)
		}
	}
}

func TestRatchetTreeMarshalTrimsBlanks(t *testing.T) {
	tree := sampleRatchetTree()
	want, err := tree.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := append(tree, nil, nil).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("trailing blanks were encoded:\ngot  %x\nwant %x", got, want)
	}
}

func TestTBS(t *testing.T) {
	kp := sampleKeyPackage()
	full, err := kp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := kp.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if want := full[:len(full)-1-len(kp.Signature)]; !bytes.Equal(tbs, want) {
		t.Errorf("KeyPackageTBS: got %x, want %x", tbs, want)
	}

	gi := sampleGroupInfo()
	full, _ = gi.Marshal()
	if tbs, _ = gi.TBS(); !bytes.Equal(tbs, full[:len(full)-1-len(gi.Signature)]) {
		t.Errorf("GroupInfoTBS: got %x", tbs)
	}

	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		n := sampleLeafNode(src)
		full, _ := n.Marshal()
		prefix := full[:len(full)-2-len(n.Signature)] // a 64-byte signature has a 2-byte header
		tbs, err := n.TBS([]byte("grp"), 0x01020304)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(prefix)
		if src != LeafNodeSourceKeyPackage {
			want = append(want, 3, 'g', 'r', 'p', 1, 2, 3, 4)
		}
		if !bytes.Equal(tbs, want) {
			t.Errorf("LeafNodeTBS (source %d): got %x, want %x", src, tbs, want)
		}
	}
}

func TestKeyPackageRef(t *testing.T) {
	kp := sampleKeyPackage()
	ref, err := kp.Ref(CipherSuite(1))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := kp.Marshal()
	want, _ := CipherSuite(1).RefHash("MLS 1.0 KeyPackage Reference", data)
	if !bytes.Equal(ref, want) || len(ref) != 32 {
		t.Errorf("Ref: got %x, want %x", ref, want)
	}
	if _, err := kp.Ref(0xffff); err == nil {
		t.Error("Ref under an unknown cipher suite succeeded")
	}
}
