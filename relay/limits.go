package relay

import "time"

// Protocol limits. Both ends enforce them; docs/protocol.md lists them.
const (
	// Version is the protocol version carried in every frame.
	Version = 1
	// Subprotocol is the WebSocket subprotocol name the relay speaks.
	Subprotocol = "tainik.relay.v1"
	// Path is the HTTP path of the WebSocket endpoint.
	Path = "/v1/ws"

	// MaxFrameSize bounds a frame sent by a client.
	MaxFrameSize = 68 * 1024
	// MaxResponseSize bounds a frame sent by the relay.
	MaxResponseSize = 1 << 20
	// MaxPayload is the largest padded queue payload and the largest group
	// log message.
	MaxPayload = 64 * 1024
	// MaxChunk is the largest blob chunk in one BlobPut or BlobGet.
	MaxChunk = 64 * 1024
	// MaxReceive bounds how many messages one QueueReceive returns.
	MaxReceive = 100
	// MaxAck bounds how many message ids one QueueAck carries.
	MaxAck = 256
	// MaxLogRead bounds how many entries one LogRead returns.
	MaxLogRead = 256
	// MaxGroupID bounds the MLS group id a log is created for.
	MaxGroupID = 255

	// IDSize is the size of queue identifiers, log identifiers and
	// capability tokens.
	IDSize = 32
	// MsgIDSize is the size of a sender-chosen message id.
	MsgIDSize = 16
	// NonceSize is the size of the per-connection session nonce that
	// recipient signatures cover.
	NonceSize = 32

	// WriteTimeout is how long the relay waits for a client to take a frame
	// before it closes the connection.
	WriteTimeout = 10 * time.Second
)

// Buckets are the sizes a padded queue payload may have.
var Buckets = [...]int{1024, 4096, 16384, 64 * 1024}
