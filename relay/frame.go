// Package relay is the wire protocol between Tainik clients and the relay,
// the MLS delivery service of RFC 9750. Both ends use it: frames, commands,
// the error code table, the protocol limits and queue payload padding.
//
// A frame is one binary WebSocket message:
//
//	uint8  version = 1
//	uint8  type
//	uint32 request_id
//	opaque body<0..2^32-1>
//
// See docs/protocol.md for every command.
package relay

import (
	"crypto/ed25519"
	"errors"
	"sync"

	"golang.org/x/crypto/cryptobyte"
)

// Type is a frame type.
type Type uint8

// Frame types. Requests go from client to relay; responses carry the
// request's id; pushes and Hello carry id 0.
const (
	TypeHello Type = 0x01

	TypeQueueCreate    Type = 0x10
	TypeQueueLock      Type = 0x11
	TypeQueueSend      Type = 0x12
	TypeQueueSubscribe Type = 0x13
	TypeQueueReceive   Type = 0x14
	TypeQueueAck       Type = 0x15
	TypeQueueDelete    Type = 0x16

	TypeLogCreate      Type = 0x20
	TypeLogAppend      Type = 0x21
	TypeLogRead        Type = 0x22
	TypeLogSubscribe   Type = 0x23
	TypeLogUnsubscribe Type = 0x24

	TypeBlobCreate Type = 0x30
	TypeBlobPut    Type = 0x31
	TypeBlobStat   Type = 0x32
	TypeBlobGet    Type = 0x33

	TypeOK           Type = 0x80
	TypeError        Type = 0x81
	TypeQueueCreated Type = 0x82
	TypeMessages     Type = 0x83
	TypeLogCreated   Type = 0x84
	TypeLogAppended  Type = 0x85
	TypeLogEntries   Type = 0x86
	TypeBlobCreated  Type = 0x87
	TypeBlobStatus   Type = 0x88
	TypeBlobData     Type = 0x89

	TypeQueuePush Type = 0xA0
	TypeLogPush   Type = 0xA1
)

// ID is a queue identifier, log identifier or capability token: 32 random
// bytes.
type ID [IDSize]byte

// MsgID is a sender-chosen message id; recipients drop duplicates by it.
type MsgID [MsgIDSize]byte

// Message is one decoded frame body.
type Message interface {
	Type() Type
	marshal(b *cryptobyte.Builder)
	unmarshal(s *cryptobyte.String) bool
}

// Signed is a request that carries an Ed25519 signature over its other
// fields and the connection's session nonce.
type Signed interface {
	Message
	fields(b *cryptobyte.Builder)
	signature() *[]byte
}

// ErrBadFrame is returned (wrapped in an *Error with CodeBadFrame) for
// malformed or truncated frames.
var errBadFrame = &Error{Code: CodeBadFrame, Message: "malformed frame"}

// encodeBuffers are scratch space for Encode: the builder grows by
// doubling, so building in a reused buffer and copying the result once
// allocates one exact frame instead of a series of growing ones.
var encodeBuffers = sync.Pool{New: func() any { return new([]byte) }}

// Encode builds a frame with the given request id.
func Encode(id uint32, m Message) []byte {
	bp := encodeBuffers.Get().(*[]byte)
	b := cryptobyte.NewBuilder((*bp)[:0])
	b.AddUint8(Version)
	b.AddUint8(uint8(m.Type()))
	b.AddUint32(id)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { m.marshal(b) })
	built := b.BytesOrPanic()
	frame := append([]byte(nil), built...)
	if cap(built) <= 128<<10 {
		*bp = built
		encodeBuffers.Put(bp)
	}
	return frame
}

// Decode parses a frame. Byte fields of the returned message (payloads,
// log messages, chunks) alias frame, which must not be changed while the
// message is in use. Errors are *Error values with CodeBadFrame,
// CodeUnsupportedVersion or CodeUnknownCommand; when the type is unknown the
// request id is still returned so the relay can answer it.
func Decode(frame []byte) (uint32, Message, error) {
	s := cryptobyte.String(frame)
	var version, typ uint8
	var id uint32
	var body cryptobyte.String
	if !s.ReadUint8(&version) {
		return 0, nil, errBadFrame
	}
	if version != Version {
		return 0, nil, &Error{Code: CodeUnsupportedVersion, Message: "unsupported protocol version"}
	}
	if !s.ReadUint8(&typ) || !s.ReadUint32(&id) {
		return 0, nil, errBadFrame
	}
	m := newMessage(Type(typ))
	if !readU32Prefixed(&s, &body) || !s.Empty() {
		if m == nil {
			return 0, nil, errBadFrame // not a frame at all
		}
		return id, nil, errBadFrame // a known request whose id was read: the answer names it
	}
	if m == nil {
		return id, nil, &Error{Code: CodeUnknownCommand, Message: "unknown command"}
	}
	if !m.unmarshal(&body) || !body.Empty() {
		return id, nil, errBadFrame
	}
	return id, m, nil
}

func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeQueueCreate:
		return new(QueueCreate)
	case TypeQueueLock:
		return new(QueueLock)
	case TypeQueueSend:
		return new(QueueSend)
	case TypeQueueSubscribe:
		return new(QueueSubscribe)
	case TypeQueueReceive:
		return new(QueueReceive)
	case TypeQueueAck:
		return new(QueueAck)
	case TypeQueueDelete:
		return new(QueueDelete)
	case TypeLogCreate:
		return new(LogCreate)
	case TypeLogAppend:
		return new(LogAppend)
	case TypeLogRead:
		return new(LogRead)
	case TypeLogSubscribe:
		return new(LogSubscribe)
	case TypeLogUnsubscribe:
		return new(LogUnsubscribe)
	case TypeBlobCreate:
		return new(BlobCreate)
	case TypeBlobPut:
		return new(BlobPut)
	case TypeBlobStat:
		return new(BlobStat)
	case TypeBlobGet:
		return new(BlobGet)
	case TypeOK:
		return new(OK)
	case TypeError:
		return new(ErrorFrame)
	case TypeQueueCreated:
		return new(QueueCreated)
	case TypeMessages:
		return new(Messages)
	case TypeLogCreated:
		return new(LogCreated)
	case TypeLogAppended:
		return new(LogAppended)
	case TypeLogEntries:
		return new(LogEntries)
	case TypeBlobCreated:
		return new(BlobCreated)
	case TypeBlobStatus:
		return new(BlobStatus)
	case TypeBlobData:
		return new(BlobData)
	case TypeQueuePush:
		return new(QueuePush)
	case TypeLogPush:
		return new(LogPush)
	}
	return nil
}

const sigContext = "tainik relay v1 signature\x00"

func signedBytes(m Signed, nonce []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes([]byte(sigContext))
	b.AddBytes(nonce)
	b.AddUint8(uint8(m.Type()))
	m.fields(b)
	return b.BytesOrPanic()
}

// Sign signs m for the connection whose Hello carried nonce.
func Sign(m Signed, nonce []byte, key ed25519.PrivateKey) {
	*m.signature() = ed25519.Sign(key, signedBytes(m, nonce))
}

// Verify checks m's signature. The nonce binds it to one connection, so a
// recorded request cannot be replayed on another.
func Verify(m Signed, nonce []byte, pub []byte) bool {
	sig := *m.signature()
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(pub), signedBytes(m, nonce), sig)
}

func marshalSigned(m Signed, b *cryptobyte.Builder) {
	m.fields(b)
	sig := *m.signature()
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
}

// readSig reads a signature: empty, or an Ed25519 signature.
func readSig(s *cryptobyte.String, sig *[]byte) bool {
	var v cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&v) || (len(v) != 0 && len(v) != ed25519.SignatureSize) {
		return false
	}
	*sig = append([]byte(nil), v...)
	return true
}

func readBool(s *cryptobyte.String, v *bool) bool {
	var b uint8
	if !s.ReadUint8(&b) || b > 1 {
		return false
	}
	*v = b == 1
	return true
}

func addBool(b *cryptobyte.Builder, v bool) {
	if v {
		b.AddUint8(1)
	} else {
		b.AddUint8(0)
	}
}

func readBytes32(s *cryptobyte.String, out *[]byte) bool {
	var v cryptobyte.String
	if !readU32Prefixed(s, &v) {
		return false
	}
	// Alias the frame instead of copying: frames are not reused, and
	// the capacity is cut so that an append cannot reach the bytes that
	// follow.
	*out = []byte(v)[:len(v):len(v)]
	return true
}

func addBytes32(b *cryptobyte.Builder, v []byte) {
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

// DecodeError turns an Error frame into an *Error.
func (e *ErrorFrame) Err() *Error {
	return &Error{Code: e.Code, Detail: e.Detail, Message: e.Message}
}

// ErrorFrameFor converts any error into an Error frame; errors that are not
// *Error become CodeInternal without their text, so no internals leak.
func ErrorFrameFor(err error) *ErrorFrame {
	var re *Error
	if errors.As(err, &re) {
		msg := re.Message
		if msg == "" {
			msg = re.Code.String()
		}
		return &ErrorFrame{Code: re.Code, Detail: re.Detail, Message: msg}
	}
	return &ErrorFrame{Code: CodeInternal, Message: CodeInternal.String()}
}

// readU32Prefixed reads a vector with a uint32 length prefix; cryptobyte has
// a builder for it but no reader.
func readU32Prefixed(s *cryptobyte.String, out *cryptobyte.String) bool {
	var n uint32
	if !s.ReadUint32(&n) || uint64(n) > uint64(len(*s)) {
		return false
	}
	var v []byte
	if !s.ReadBytes(&v, int(n)) {
		return false
	}
	*out = v
	return true
}
