package relay

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"
)

func sampleMessages() []Message {
	id := ID{1, 2, 3}
	return []Message{
		&Hello{Nonce: [32]byte{9}},
		&QueueCreate{RecipientKey: [32]byte{4}, Contact: true, Sig: make([]byte, 64)},
		&QueueLock{RecipientID: id, SenderKey: [32]byte{5}, Sig: make([]byte, 64)},
		&QueueSend{SenderID: id, MsgID: MsgID{7}, Payload: make([]byte, 1024)},
		&QueueSubscribe{recipientCommand{RecipientID: id, Sig: make([]byte, 64)}},
		&QueueReceive{recipientCommand{RecipientID: id, Sig: make([]byte, 64)}},
		&QueueAck{RecipientID: id, MsgIDs: []MsgID{{8}, {9}}, Sig: make([]byte, 64)},
		&QueueDelete{recipientCommand{RecipientID: id, Sig: make([]byte, 64)}},
		&LogCreate{GroupID: []byte("g"), Epoch: 3, TokenHash: [32]byte{1}},
		&LogAppend{LogID: id, Token: ID{2}, Message: []byte("m")},
		&LogAppend{LogID: id, Token: ID{2}, TTL: 60, Message: []byte("m")},
		&LogRead{LogID: id, Token: ID{2}, From: 7},
		&LogSubscribe{LogID: id, Token: ID{2}, From: 8},
		&LogUnsubscribe{LogID: id},
		&BlobCreate{Size: 100, Digest: [32]byte{3}},
		&BlobPut{UploadToken: id, Offset: 5, Data: []byte("chunk")},
		&BlobStat{UploadToken: id},
		&BlobGet{DownloadToken: id, Offset: 1, Max: 10},
		&OK{},
		&ErrorFrame{Code: CodeStaleEpoch, Detail: 4, Message: "stale"},
		&QueueCreated{RecipientID: id, SenderID: ID{6}},
		&Messages{Messages: []QueueMessage{{MsgID: MsgID{1}, Payload: []byte("a")}, {MsgID: MsgID{2}, Payload: []byte("b")}}},
		&LogCreated{LogID: id},
		&LogAppended{Seq: 1, Epoch: 2},
		&LogEntries{Epoch: 2, More: true, Entries: []LogEntry{{Seq: 1, Message: []byte("x")}}},
		&BlobCreated{UploadToken: id, DownloadToken: ID{7}},
		&BlobStatus{Length: 1, Size: 2, Complete: true},
		&BlobData{Size: 3, Data: []byte("abc")},
		&QueuePush{RecipientID: id, Message: QueueMessage{MsgID: MsgID{3}, Payload: []byte("p")}},
		&LogPush{LogID: id, Entry: LogEntry{Seq: 9, Message: []byte("e")}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		frame := Encode(42, m)
		id, got, err := Decode(frame)
		if err != nil {
			t.Fatalf("%T: Decode: %v", m, err)
		}
		if id != 42 || !reflect.DeepEqual(got, m) {
			t.Errorf("%T: got %d %+v, want 42 %+v", m, id, got, m)
		}
		// Every strict prefix must be rejected.
		for i := range len(frame) {
			if _, _, err := Decode(frame[:i]); err == nil {
				t.Errorf("%T: truncated frame of %d bytes accepted", m, i)
			}
		}
		if _, _, err := Decode(append(frame, 0)); err == nil {
			t.Errorf("%T: trailing byte accepted", m)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  Code
	}{
		{"empty", nil, CodeBadFrame},
		{"version", []byte{2, 0x80, 0, 0, 0, 1, 0, 0, 0, 0}, CodeUnsupportedVersion},
		{"unknown", []byte{1, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0}, CodeUnknownCommand},
		{"long length", []byte{1, 0x80, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, CodeBadFrame},
		{"bad bool", Encode(1, &QueueCreate{Sig: []byte{}})[:10+32], CodeBadFrame},
	}
	for _, tt := range tests {
		_, _, err := Decode(tt.frame)
		var re *Error
		if !errors.As(err, &re) || re.Code != tt.want {
			t.Errorf("%s: got %v, want code %d", tt.name, err, tt.want)
		}
	}
	// A boolean that is neither 0 nor 1.
	f := Encode(1, &QueueCreate{Sig: []byte{}})
	f[10+32] = 2
	if _, _, err := Decode(f); err == nil {
		t.Error("bool 2 accepted")
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	nonce := bytes.Repeat([]byte{1}, 32)
	m := &QueueAck{RecipientID: ID{1}, MsgIDs: []MsgID{{2}}}
	Sign(m, nonce, priv)
	_, got, err := Decode(Encode(1, m))
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(got.(*QueueAck), nonce, pub) {
		t.Fatal("valid signature rejected")
	}
	if Verify(got.(*QueueAck), bytes.Repeat([]byte{2}, 32), pub) {
		t.Error("signature verified under another connection's nonce")
	}
	got.(*QueueAck).MsgIDs[0][0] ^= 1
	if Verify(got.(*QueueAck), nonce, pub) {
		t.Error("signature verified over changed fields")
	}
	// The type is covered: the same fields as another command do not verify.
	d := &QueueDelete{recipientCommand{RecipientID: ID{1}}}
	Sign(d, nonce, priv)
	s := &QueueSubscribe{recipientCommand{RecipientID: ID{1}, Sig: d.Sig}}
	if Verify(s, nonce, pub) {
		t.Error("signature for QueueDelete verified as QueueSubscribe")
	}
}

func TestPad(t *testing.T) {
	for _, n := range []int{0, 1, 1020, 1021, 4092, 4093, 65532} {
		content := bytes.Repeat([]byte{0xaa}, n)
		p, err := Pad(content)
		if err != nil {
			t.Fatalf("Pad(%d): %v", n, err)
		}
		if !IsPadded(p) {
			t.Errorf("Pad(%d) has size %d", n, len(p))
		}
		got, err := Unpad(p)
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("Unpad(Pad(%d)) = %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := Pad(make([]byte, 65533)); err == nil {
		t.Error("Pad accepted too much content")
	}
	p, _ := Pad([]byte("x"))
	p[100] = 1
	if _, err := Unpad(p); err == nil {
		t.Error("Unpad accepted non-zero padding")
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(1, m))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		id, m, err := Decode(frame)
		if err != nil {
			return
		}
		// A frame that decodes re-encodes to the same bytes: the encoding is
		// canonical, which signatures over re-encoded fields rely on.
		if got := Encode(id, m); !bytes.Equal(got, frame) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, frame)
		}
	})
}

// BenchmarkPushFrame encodes and decodes a QueuePush of a 1 KiB padded
// payload, the relay's most frequent frame.
func BenchmarkPushFrame(b *testing.B) {
	m := &QueuePush{Message: QueueMessage{Payload: make([]byte, 1024)}}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(Encode(0, m)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeKeepsReadID: a frame whose body is malformed still yields the
// request id it carried, so the answer names the request.
func TestDecodeKeepsReadID(t *testing.T) {
	f := Encode(42, &QueueReceive{})
	f = append(f, 0) // a byte past the body
	id, _, err := Decode(f)
	var re *Error
	if !errors.As(err, &re) || re.Code != CodeBadFrame || id != 42 {
		t.Fatalf("Decode = id %d, %v; want id 42 and bad_frame", id, err)
	}
}

// TestSignatureLength: a signature is empty or 64 bytes.
func TestSignatureLength(t *testing.T) {
	for _, n := range []int{1, 63, 65} {
		m := &QueueSend{Payload: make([]byte, 1024), Sig: make([]byte, n)}
		if _, _, err := Decode(Encode(1, m)); err == nil {
			t.Errorf("a %d-byte signature was accepted", n)
		}
	}
	for _, n := range []int{0, 64} {
		m := &QueueSend{Payload: make([]byte, 1024), Sig: make([]byte, n)}
		if _, _, err := Decode(Encode(1, m)); err != nil {
			t.Errorf("a %d-byte signature: %v", n, err)
		}
	}
}
