package relay

import (
	"encoding/binary"
	"errors"
)

// Pad returns content padded to the smallest bucket that holds it and a
// four-byte length prefix. Queue payloads must be padded: the relay rejects
// any other size, so that it sees only a few message sizes.
func Pad(content []byte) ([]byte, error) {
	n := len(content) + 4
	for _, b := range Buckets {
		if n <= b {
			out := make([]byte, b)
			binary.BigEndian.PutUint32(out, uint32(len(content)))
			copy(out[4:], content)
			return out, nil
		}
	}
	return nil, errors.New("relay: content too large to pad")
}

// Unpad reverses Pad. It rejects payloads of other sizes, lengths that do not
// fit and non-zero padding.
func Unpad(padded []byte) ([]byte, error) {
	if !IsPadded(padded) {
		return nil, errors.New("relay: payload is not padded to a bucket size")
	}
	n := binary.BigEndian.Uint32(padded)
	if uint64(n) > uint64(len(padded)-4) {
		return nil, errors.New("relay: padded length out of range")
	}
	for _, c := range padded[4+n:] {
		if c != 0 {
			return nil, errors.New("relay: non-zero padding")
		}
	}
	return padded[4 : 4+n], nil
}

// IsPadded reports whether len(p) is one of the bucket sizes.
func IsPadded(p []byte) bool {
	for _, b := range Buckets {
		if len(p) == b {
			return true
		}
	}
	return false
}
