package relay

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// buildHeader writes an MLSMessage header by hand, followed by filler bytes.
func buildHeader(wireFormat uint16, groupID []byte, epoch uint64, contentType uint8) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, wireFormat)
	b = AppendVarint(b, uint32(len(groupID)))
	b = append(b, groupID...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	if wireFormat == WireFormatPublicMessage {
		b = append(b, 1, 0, 0, 0, 3) // member, leaf 3
		b = AppendVarint(b, 2)
		b = append(b, 'a', 'd')
	}
	b = append(b, contentType)
	return append(b, bytes.Repeat([]byte{0x5a}, 40)...)
}

func TestParseMLSHeader(t *testing.T) {
	long := bytes.Repeat([]byte{7}, 300)
	for _, wf := range []uint16{WireFormatPublicMessage, WireFormatPrivateMessage} {
		for _, gid := range [][]byte{[]byte("group"), long} {
			h, err := ParseMLSHeader(buildHeader(wf, gid, 77, ContentTypeCommit))
			if err != nil {
				t.Fatalf("wire format %d: %v", wf, err)
			}
			if h.WireFormat != wf || !bytes.Equal(h.GroupID, gid) || h.Epoch != 77 || h.ContentType != ContentTypeCommit {
				t.Errorf("got %+v", h)
			}
		}
	}
	bad := map[string][]byte{
		"empty":        nil,
		"version":      append([]byte{0, 2}, buildHeader(2, []byte("g"), 1, 1)[2:]...),
		"welcome":      buildHeader(3, []byte("g"), 1, 1),
		"content type": buildHeader(2, []byte("g"), 1, 4),
		"truncated":    buildHeader(2, []byte("g"), 1, 1)[:8],
		"non-minimal":  {0, 1, 0, 2, 0x40, 0x01, 'g'},
		"prefix 11":    {0, 1, 0, 2, 0xc0, 0, 0, 0, 0, 0, 0, 0, 1},
	}
	for name, msg := range bad {
		if _, err := ParseMLSHeader(msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseMLSHeader(f *testing.F) {
	f.Add(buildHeader(WireFormatPublicMessage, []byte("group"), 1, ContentTypeCommit))
	f.Add(buildHeader(WireFormatPrivateMessage, bytes.Repeat([]byte{1}, 100), 1<<40, ContentTypeApplication))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := ParseMLSHeader(msg)
		if err != nil {
			return
		}
		if h.ContentType < 1 || h.ContentType > 3 || len(h.GroupID) > len(msg) {
			t.Fatalf("bad header accepted: %+v", h)
		}
	})
}

// TestPublicMessageSenderAndContent: the combinations RFC 9420 Section 6
// forbids are refused (application data in a PublicMessage, an external
// sender or new member proposing anything but a proposal, a new member
// joining with anything but a commit).
func TestPublicMessageSenderAndContent(t *testing.T) {
	header := func(sender []byte, contentType uint8) []byte {
		b := binary.BigEndian.AppendUint16(nil, 1)
		b = binary.BigEndian.AppendUint16(b, WireFormatPublicMessage)
		b = append(AppendVarint(b, 1), 'g')
		b = binary.BigEndian.AppendUint64(b, 3)
		b = append(b, sender...)
		b = append(AppendVarint(b, 0), contentType)
		return append(b, 0x5a, 0x5a)
	}
	member, external := []byte{1, 0, 0, 0, 0}, []byte{2, 0, 0, 0, 0}
	newProposal, newCommit := []byte{3}, []byte{4}
	for _, c := range []struct {
		name    string
		sender  []byte
		content uint8
		ok      bool
	}{
		{"member proposal", member, ContentTypeProposal, true},
		{"member commit", member, ContentTypeCommit, true},
		{"member application", member, ContentTypeApplication, false},
		{"external proposal", external, ContentTypeProposal, true},
		{"external commit", external, ContentTypeCommit, false},
		{"new member proposal", newProposal, ContentTypeProposal, true},
		{"new member proposal's commit", newProposal, ContentTypeCommit, false},
		{"new member commit", newCommit, ContentTypeCommit, true},
		{"new member commit's proposal", newCommit, ContentTypeProposal, false},
	} {
		if _, err := ParseMLSHeader(header(c.sender, c.content)); (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
	}
}
