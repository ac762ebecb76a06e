package relay

import "fmt"

// Code is a relay error code carried in an Error frame. The table below is
// the only list of codes; docs/protocol.md mirrors it.
type Code uint16

const (
	CodeBadFrame             Code = 1  // the frame could not be parsed; the relay closes the connection
	CodeUnsupportedVersion   Code = 2  // the frame's protocol version is not spoken by this relay
	CodeUnknownCommand       Code = 3  // the frame type is not a known request
	CodeTooLarge             Code = 4  // a payload exceeds a documented limit
	CodeBadSignature         Code = 5  // an Ed25519 signature did not verify
	CodeNotFound             Code = 6  // unknown or expired queue, log, blob or message
	CodeAuth                 Code = 7  // a capability token was wrong
	CodeQueueLocked          Code = 8  // the queue is locked to a sender key and the send was not signed by it
	CodeQuotaExceeded        Code = 9  // a queue, log or blob quota is full
	CodeRateLimited          Code = 10 // too many sends to a contact address; Detail is the wait in milliseconds
	CodeStaleEpoch           Code = 11 // the log moved on; Detail is the log's current epoch: fetch and re-base
	CodeFutureEpoch          Code = 12 // the message is for an epoch the log has not reached; Detail is the current epoch
	CodeBadMessage           Code = 13 // the MLS header is malformed or names another group
	CodeBadPadding           Code = 14 // a queue payload is not one of the padded sizes
	CodeBadOffset            Code = 15 // a blob chunk does not start at the stored length; Detail is that length
	CodeIntegrity            Code = 16 // a finished blob does not match its digest; the upload is discarded
	CodeTooManySubscriptions Code = 17 // the connection holds the maximum number of subscriptions
	CodeTooManyRequests      Code = 18 // the connection has the maximum number of requests in flight
	CodeInternal             Code = 19 // the relay failed; retry later
	CodeShuttingDown         Code = 20 // the relay is draining; reconnect elsewhere or later
	CodeBadRequest           Code = 21 // a well-formed request with an invalid field (e.g. a bad key)
)

var codeText = map[Code]string{
	CodeBadFrame:             "malformed frame",
	CodeUnsupportedVersion:   "unsupported protocol version",
	CodeUnknownCommand:       "unknown command",
	CodeTooLarge:             "payload too large",
	CodeBadSignature:         "bad signature",
	CodeNotFound:             "not found",
	CodeAuth:                 "bad capability",
	CodeQueueLocked:          "queue is locked to another sender",
	CodeQuotaExceeded:        "quota exceeded",
	CodeRateLimited:          "rate limited",
	CodeStaleEpoch:           "stale epoch: fetch the log and re-base",
	CodeFutureEpoch:          "future epoch",
	CodeBadMessage:           "bad MLS message",
	CodeBadPadding:           "payload is not padded to a bucket size",
	CodeBadOffset:            "chunk offset does not match the stored length",
	CodeIntegrity:            "blob digest mismatch",
	CodeTooManySubscriptions: "too many subscriptions",
	CodeTooManyRequests:      "too many requests in flight",
	CodeInternal:             "internal error",
	CodeShuttingDown:         "relay is shutting down",
	CodeBadRequest:           "bad request",
}

// String returns the code's meaning.
func (c Code) String() string {
	if s, ok := codeText[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Error is a relay error as sent on the wire in an Error frame, and as
// returned by the client. Detail carries code-specific data (the current
// epoch for CodeStaleEpoch, the stored length for CodeBadOffset, the wait in
// milliseconds for CodeRateLimited).
type Error struct {
	Code    Code
	Detail  uint64
	Message string
}

func (e *Error) Error() string {
	if e.Message != "" && e.Message != e.Code.String() {
		return fmt.Sprintf("relay: %s (%d): %s", e.Code, uint16(e.Code), e.Message)
	}
	return fmt.Sprintf("relay: %s (%d)", e.Code, uint16(e.Code))
}

// Is makes errors.Is(err, &Error{Code: c}) match on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an *Error with the given code and message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
