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
