package relay

import "golang.org/x/crypto/cryptobyte"

// Hello is the relay's first frame on a connection. Recipient signatures
// cover Nonce, which binds them to this connection.
type Hello struct {
	Nonce [NonceSize]byte
}

func (*Hello) Type() Type                            { return TypeHello }
func (m *Hello) marshal(b *cryptobyte.Builder)       { b.AddBytes(m.Nonce[:]) }
func (m *Hello) unmarshal(s *cryptobyte.String) bool { return s.CopyBytes(m.Nonce[:]) }

// QueueCreate creates a queue owned by RecipientKey, an Ed25519 public key.
// It is signed by that key to prove possession. Contact makes the queue a
// contact address: its sender side may be published, it cannot be locked,
// and sends to it are rate limited.
type QueueCreate struct {
	RecipientKey [32]byte
	Contact      bool
	Sig          []byte
}

func (*QueueCreate) Type() Type                      { return TypeQueueCreate }
func (m *QueueCreate) signature() *[]byte            { return &m.Sig }
func (m *QueueCreate) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }
func (m *QueueCreate) fields(b *cryptobyte.Builder) {
	b.AddBytes(m.RecipientKey[:])
	addBool(b, m.Contact)
}
func (m *QueueCreate) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.RecipientKey[:]) && readBool(s, &m.Contact) && readSig(s, &m.Sig)
}

// QueueLock locks the queue's sender side to SenderKey: from then on every
// QueueSend must be signed by it. A queue can be locked once.
type QueueLock struct {
	RecipientID ID
	SenderKey   [32]byte
	Sig         []byte
}

func (*QueueLock) Type() Type                      { return TypeQueueLock }
func (m *QueueLock) signature() *[]byte            { return &m.Sig }
func (m *QueueLock) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }
func (m *QueueLock) fields(b *cryptobyte.Builder) {
	b.AddBytes(m.RecipientID[:])
	b.AddBytes(m.SenderKey[:])
}
func (m *QueueLock) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.RecipientID[:]) && s.CopyBytes(m.SenderKey[:]) && readSig(s, &m.Sig)
}

// QueueSend puts a padded payload into the queue named by its sender id.
// Sig is empty for an unlocked queue and an Ed25519 signature by the sender
// key for a locked one. Sending the same MsgID twice stores it once.
type QueueSend struct {
	SenderID ID
	MsgID    MsgID
	Payload  []byte
	Sig      []byte
}

func (*QueueSend) Type() Type                      { return TypeQueueSend }
func (m *QueueSend) signature() *[]byte            { return &m.Sig }
func (m *QueueSend) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }
func (m *QueueSend) fields(b *cryptobyte.Builder) {
	b.AddBytes(m.SenderID[:])
	b.AddBytes(m.MsgID[:])
	addBytes32(b, m.Payload)
}
func (m *QueueSend) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.SenderID[:]) && s.CopyBytes(m.MsgID[:]) && readBytes32(s, &m.Payload) && readSig(s, &m.Sig)
}

// recipientCommand is the shape shared by recipient commands that name only
// the queue.
type recipientCommand struct {
	RecipientID ID
	Sig         []byte
}

func (m *recipientCommand) signature() *[]byte           { return &m.Sig }
func (m *recipientCommand) fields(b *cryptobyte.Builder) { b.AddBytes(m.RecipientID[:]) }
func (m *recipientCommand) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.RecipientID[:]) && readSig(s, &m.Sig)
}

// QueueSubscribe makes the relay push the queue's messages on this
// connection (QueuePush), starting with those not yet acknowledged. One
// connection holds a queue's subscription; a new one replaces it.
type QueueSubscribe struct{ recipientCommand }

func (*QueueSubscribe) Type() Type                      { return TypeQueueSubscribe }
func (m *QueueSubscribe) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }

// QueueReceive returns the oldest unacknowledged messages (Messages).
type QueueReceive struct{ recipientCommand }

func (*QueueReceive) Type() Type                      { return TypeQueueReceive }
func (m *QueueReceive) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }

// QueueDelete deletes the queue and its messages.
type QueueDelete struct{ recipientCommand }

func (*QueueDelete) Type() Type                      { return TypeQueueDelete }
func (m *QueueDelete) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }

// QueueAck acknowledges, and so deletes, one or more messages (at most
// MaxAck).
type QueueAck struct {
	RecipientID ID
	MsgIDs      []MsgID
	Sig         []byte
}

func (*QueueAck) Type() Type                      { return TypeQueueAck }
func (m *QueueAck) signature() *[]byte            { return &m.Sig }
func (m *QueueAck) marshal(b *cryptobyte.Builder) { marshalSigned(m, b) }
func (m *QueueAck) fields(b *cryptobyte.Builder) {
	b.AddBytes(m.RecipientID[:])
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, id := range m.MsgIDs {
			b.AddBytes(id[:])
		}
	})
}
func (m *QueueAck) unmarshal(s *cryptobyte.String) bool {
	var ids cryptobyte.String
	if !s.CopyBytes(m.RecipientID[:]) || !s.ReadUint16LengthPrefixed(&ids) ||
		len(ids) == 0 || len(ids)%MsgIDSize != 0 || len(ids)/MsgIDSize > MaxAck {
		return false
	}
	m.MsgIDs = make([]MsgID, len(ids)/MsgIDSize)
	for i := range m.MsgIDs {
		ids.CopyBytes(m.MsgIDs[i][:])
	}
	return readSig(s, &m.Sig)
}

// LogCreate creates a group log for the MLS group GroupID at Epoch. Members
// later present the token whose SHA-256 is TokenHash.
type LogCreate struct {
	GroupID   []byte
	Epoch     uint64
	TokenHash [32]byte
}

func (*LogCreate) Type() Type { return TypeLogCreate }
func (m *LogCreate) marshal(b *cryptobyte.Builder) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m.GroupID) })
	b.AddUint64(m.Epoch)
	b.AddBytes(m.TokenHash[:])
}
func (m *LogCreate) unmarshal(s *cryptobyte.String) bool {
	var g cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&g) || len(g) == 0 {
		return false
	}
	m.GroupID = append([]byte(nil), g...)
	return s.ReadUint64(&m.Epoch) && s.CopyBytes(m.TokenHash[:])
}

// LogAppend appends an MLSMessage (PublicMessage or PrivateMessage) to a log.
// TTL is the entry's lifetime in seconds; 0 means the log's retention, and
// the relay caps larger values at it.
type LogAppend struct {
	LogID   ID
	Token   ID
	TTL     uint32
	Message []byte
}

func (*LogAppend) Type() Type { return TypeLogAppend }
func (m *LogAppend) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.LogID[:])
	b.AddBytes(m.Token[:])
	b.AddUint32(m.TTL)
	addBytes32(b, m.Message)
}
func (m *LogAppend) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.LogID[:]) && s.CopyBytes(m.Token[:]) && s.ReadUint32(&m.TTL) && readBytes32(s, &m.Message)
}

// LogRead returns entries with sequence numbers from From on (LogEntries).
type LogRead struct {
	LogID ID
	Token ID
	From  uint64
}

func (*LogRead) Type() Type { return TypeLogRead }
func (m *LogRead) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.LogID[:])
	b.AddBytes(m.Token[:])
	b.AddUint64(m.From)
}
func (m *LogRead) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.LogID[:]) && s.CopyBytes(m.Token[:]) && s.ReadUint64(&m.From)
}

// LogSubscribe pushes entries from From on, then each new entry (LogPush).
type LogSubscribe LogRead

func (*LogSubscribe) Type() Type                            { return TypeLogSubscribe }
func (m *LogSubscribe) marshal(b *cryptobyte.Builder)       { (*LogRead)(m).marshal(b) }
func (m *LogSubscribe) unmarshal(s *cryptobyte.String) bool { return (*LogRead)(m).unmarshal(s) }

// LogUnsubscribe ends this connection's subscription to a log, if it has
// one. It needs no token: it concerns only the connection that sends it.
type LogUnsubscribe struct {
	LogID ID
}

func (*LogUnsubscribe) Type() Type                      { return TypeLogUnsubscribe }
func (m *LogUnsubscribe) marshal(b *cryptobyte.Builder) { b.AddBytes(m.LogID[:]) }
func (m *LogUnsubscribe) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.LogID[:])
}

// BlobCreate starts an upload of Size bytes whose SHA-256 is Digest.
type BlobCreate struct {
	Size   uint64
	Digest [32]byte
}

func (*BlobCreate) Type() Type { return TypeBlobCreate }
func (m *BlobCreate) marshal(b *cryptobyte.Builder) {
	b.AddUint64(m.Size)
	b.AddBytes(m.Digest[:])
}
func (m *BlobCreate) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&m.Size) && s.CopyBytes(m.Digest[:])
}

// BlobPut appends a chunk at Offset, which must equal the stored length
// (BlobStat tells it after an interruption).
type BlobPut struct {
	UploadToken ID
	Offset      uint64
	Data        []byte
}

func (*BlobPut) Type() Type { return TypeBlobPut }
func (m *BlobPut) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.UploadToken[:])
	b.AddUint64(m.Offset)
	addBytes32(b, m.Data)
}
func (m *BlobPut) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.UploadToken[:]) && s.ReadUint64(&m.Offset) && readBytes32(s, &m.Data)
}

// BlobStat reports an upload's progress (BlobStatus).
type BlobStat struct {
	UploadToken ID
}

func (*BlobStat) Type() Type                            { return TypeBlobStat }
func (m *BlobStat) marshal(b *cryptobyte.Builder)       { b.AddBytes(m.UploadToken[:]) }
func (m *BlobStat) unmarshal(s *cryptobyte.String) bool { return s.CopyBytes(m.UploadToken[:]) }

// BlobGet reads up to Max bytes of a complete blob from Offset (BlobData).
type BlobGet struct {
	DownloadToken ID
	Offset        uint64
	Max           uint32
}

func (*BlobGet) Type() Type { return TypeBlobGet }
func (m *BlobGet) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.DownloadToken[:])
	b.AddUint64(m.Offset)
	b.AddUint32(m.Max)
}
func (m *BlobGet) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.DownloadToken[:]) && s.ReadUint64(&m.Offset) && s.ReadUint32(&m.Max)
}

// OK answers a request that returns nothing.
type OK struct{}

func (*OK) Type() Type                        { return TypeOK }
func (*OK) marshal(*cryptobyte.Builder)       {}
func (*OK) unmarshal(*cryptobyte.String) bool { return true }

// ErrorFrame answers a failed request with a code from the table in
// errors.go.
type ErrorFrame struct {
	Code    Code
	Detail  uint64
	Message string
}

func (*ErrorFrame) Type() Type { return TypeError }
func (m *ErrorFrame) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(m.Code))
	b.AddUint64(m.Detail)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.Message)) })
}
func (m *ErrorFrame) unmarshal(s *cryptobyte.String) bool {
	var msg cryptobyte.String
	if !s.ReadUint16((*uint16)(&m.Code)) || !s.ReadUint64(&m.Detail) || !s.ReadUint16LengthPrefixed(&msg) {
		return false
	}
	m.Message = string(msg)
	return true
}

// QueueCreated answers QueueCreate with the queue's two unrelated
// identifiers.
type QueueCreated struct {
	RecipientID ID
	SenderID    ID
}

func (*QueueCreated) Type() Type { return TypeQueueCreated }
func (m *QueueCreated) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.RecipientID[:])
	b.AddBytes(m.SenderID[:])
}
func (m *QueueCreated) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.RecipientID[:]) && s.CopyBytes(m.SenderID[:])
}

// QueueMessage is one message in a queue.
type QueueMessage struct {
	MsgID   MsgID
	Payload []byte
}

func (m *QueueMessage) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.MsgID[:])
	addBytes32(b, m.Payload)
}
func (m *QueueMessage) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.MsgID[:]) && readBytes32(s, &m.Payload)
}

// Messages answers QueueReceive.
type Messages struct {
	Messages []QueueMessage
}

func (*Messages) Type() Type { return TypeMessages }
func (m *Messages) marshal(b *cryptobyte.Builder) {
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) {
		for i := range m.Messages {
			m.Messages[i].marshal(b)
		}
	})
}
func (m *Messages) unmarshal(s *cryptobyte.String) bool {
	var list cryptobyte.String
	if !readU32Prefixed(s, &list) {
		return false
	}
	for !list.Empty() {
		var q QueueMessage
		if !q.unmarshal(&list) {
			return false
		}
		m.Messages = append(m.Messages, q)
	}
	return true
}

// LogCreated answers LogCreate.
type LogCreated struct {
	LogID ID
}

func (*LogCreated) Type() Type                            { return TypeLogCreated }
func (m *LogCreated) marshal(b *cryptobyte.Builder)       { b.AddBytes(m.LogID[:]) }
func (m *LogCreated) unmarshal(s *cryptobyte.String) bool { return s.CopyBytes(m.LogID[:]) }

// LogAppended answers LogAppend with the entry's sequence number and the
// log's epoch after it.
type LogAppended struct {
	Seq   uint64
	Epoch uint64
}

func (*LogAppended) Type() Type { return TypeLogAppended }
func (m *LogAppended) marshal(b *cryptobyte.Builder) {
	b.AddUint64(m.Seq)
	b.AddUint64(m.Epoch)
}
func (m *LogAppended) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&m.Seq) && s.ReadUint64(&m.Epoch)
}

// LogEntry is one entry of a group log.
type LogEntry struct {
	Seq     uint64
	Message []byte
}

func (m *LogEntry) marshal(b *cryptobyte.Builder) {
	b.AddUint64(m.Seq)
	addBytes32(b, m.Message)
}
func (m *LogEntry) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&m.Seq) && readBytes32(s, &m.Message)
}

// LogEntries answers LogRead. Epoch is the log's current epoch; More is set
// when entries past the last one exist.
type LogEntries struct {
	Epoch   uint64
	More    bool
	Entries []LogEntry
}

func (*LogEntries) Type() Type { return TypeLogEntries }
func (m *LogEntries) marshal(b *cryptobyte.Builder) {
	b.AddUint64(m.Epoch)
	addBool(b, m.More)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) {
		for i := range m.Entries {
			m.Entries[i].marshal(b)
		}
	})
}
func (m *LogEntries) unmarshal(s *cryptobyte.String) bool {
	var list cryptobyte.String
	if !s.ReadUint64(&m.Epoch) || !readBool(s, &m.More) || !readU32Prefixed(s, &list) {
		return false
	}
	for !list.Empty() {
		var e LogEntry
		if !e.unmarshal(&list) {
			return false
		}
		m.Entries = append(m.Entries, e)
	}
	return true
}

// BlobCreated answers BlobCreate with two capabilities: one to upload, one
// to download. They are unrelated random tokens.
type BlobCreated struct {
	UploadToken   ID
	DownloadToken ID
}

func (*BlobCreated) Type() Type { return TypeBlobCreated }
func (m *BlobCreated) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.UploadToken[:])
	b.AddBytes(m.DownloadToken[:])
}
func (m *BlobCreated) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.UploadToken[:]) && s.CopyBytes(m.DownloadToken[:])
}

// BlobStatus answers BlobPut and BlobStat.
type BlobStatus struct {
	Length   uint64
	Size     uint64
	Complete bool
}

func (*BlobStatus) Type() Type { return TypeBlobStatus }
func (m *BlobStatus) marshal(b *cryptobyte.Builder) {
	b.AddUint64(m.Length)
	b.AddUint64(m.Size)
	addBool(b, m.Complete)
}
func (m *BlobStatus) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&m.Length) && s.ReadUint64(&m.Size) && readBool(s, &m.Complete)
}

// BlobData answers BlobGet.
type BlobData struct {
	Size uint64
	Data []byte
}

func (*BlobData) Type() Type { return TypeBlobData }
func (m *BlobData) marshal(b *cryptobyte.Builder) {
	b.AddUint64(m.Size)
	addBytes32(b, m.Data)
}
func (m *BlobData) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&m.Size) && readBytes32(s, &m.Data)
}

// QueuePush delivers a queue message to the subscribed recipient.
type QueuePush struct {
	RecipientID ID
	Message     QueueMessage
}

func (*QueuePush) Type() Type { return TypeQueuePush }
func (m *QueuePush) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.RecipientID[:])
	m.Message.marshal(b)
}
func (m *QueuePush) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.RecipientID[:]) && m.Message.unmarshal(s)
}

// LogPush delivers a log entry to a subscriber.
type LogPush struct {
	LogID ID
	Entry LogEntry
}

func (*LogPush) Type() Type { return TypeLogPush }
func (m *LogPush) marshal(b *cryptobyte.Builder) {
	b.AddBytes(m.LogID[:])
	m.Entry.marshal(b)
}
func (m *LogPush) unmarshal(s *cryptobyte.String) bool {
	return s.CopyBytes(m.LogID[:]) && m.Entry.unmarshal(s)
}
