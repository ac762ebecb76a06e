package mls

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// This file holds the one implementation of the TLS presentation language as
// MLS uses it (RFC 9420, Section 2.1): the variable-length integer that
// prefixes every vector, opaque vectors, vectors of structures and optional
// values. Every decoder in the package is built on these helpers, so the
// strictness rules (minimal length encodings, no reads past the input, no
// trailing bytes) are enforced in exactly one place.

// maxVarint is the largest value the MLS variable-length integer can carry:
// 30 bits, with the two top bits of the first byte giving the length.
// See RFC 9420, Section 2.1.2.
const maxVarint = 1<<30 - 1

// ParseError reports bytes that do not decode as the named structure.
type ParseError struct {
	// What names the structure being decoded, in the RFC's terms.
	What string
	// Reason says what was wrong with it.
	Reason string
}

func (e *ParseError) Error() string {
	return "mls: malformed " + e.What + ": " + e.Reason
}

// errVarintNonMinimal and friends are the reasons a vector header is refused.
var (
	errVarintNonMinimal = errors.New("non-minimal variable-length integer")
	errVarintPrefix     = errors.New("variable-length integer with reserved prefix 0b11")
)

// readVarint reads an MLS variable-length integer, refusing the reserved
// two-bit prefix 0b11 and any encoding longer than the value needs.
// See RFC 9420, Section 2.1.2.
func readVarint(s *cryptobyte.String, out *uint64) bool {
	v, err := parseVarint(s)
	if err != nil {
		return false
	}
	*out = v
	return true
}

// parseVarint is readVarint with the reason for a failure, used where the
// caller wants to say why (the deserialization vectors, fuzzing).
func parseVarint(s *cryptobyte.String) (uint64, error) {
	if len(*s) == 0 {
		return 0, errors.New("truncated variable-length integer")
	}
	prefix := (*s)[0] >> 6
	if prefix == 3 {
		return 0, errVarintPrefix
	}
	n := 1 << prefix
	if len(*s) < n {
		return 0, errors.New("truncated variable-length integer")
	}
	v := uint64((*s)[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64((*s)[i])
	}
	if n > 1 && v < 1<<(8*(n/2)-2) {
		return 0, errVarintNonMinimal
	}
	*s = (*s)[n:]
	return v, nil
}

// appendVarint appends v in the shortest MLS variable-length encoding.
// It panics if v exceeds 2^30-1; callers check lengths before building.
func appendVarint(dst []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(dst, byte(v))
	case v < 1<<14:
		return append(dst, byte(v>>8)|0x40, byte(v))
	case v <= maxVarint:
		return append(dst, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
	panic("mls: variable-length integer out of range")
}

// addVarint writes v in the shortest MLS variable-length encoding. A value
// past 2^30-1 sets an error on the builder.
func addVarint(b *cryptobyte.Builder, v uint64) {
	if v > maxVarint {
		b.SetError(fmt.Errorf("mls: vector of %d bytes exceeds the 2^30-1 limit", v))
		return
	}
	b.AddBytes(appendVarint(nil, v))
}

// readOpaque reads opaque data<V>. The returned slice aliases the input.
func readOpaque(s *cryptobyte.String, out *[]byte) bool {
	var n uint64
	if !readVarint(s, &n) || uint64(len(*s)) < n {
		return false
	}
	*out = (*s)[:n]
	*s = (*s)[n:]
	return true
}

// readOpaqueCopy reads opaque data<V> into a fresh slice that does not alias
// the input, for values that outlive the buffer they were parsed from. An
// empty vector decodes as a non-nil empty slice.
func readOpaqueCopy(s *cryptobyte.String, out *[]byte) bool {
	var v []byte
	if !readOpaque(s, &v) {
		return false
	}
	*out = append(make([]byte, 0, len(v)), v...)
	return true
}

// addOpaque writes opaque data<V>.
func addOpaque(b *cryptobyte.Builder, v []byte) {
	addVarint(b, uint64(len(v)))
	b.AddBytes(v)
}

// readVector reads the body of a vector<V> of structures; the caller parses
// the elements from out until it is empty.
func readVector(s *cryptobyte.String, out *cryptobyte.String) bool {
	var body []byte
	if !readOpaque(s, &body) {
		return false
	}
	*out = cryptobyte.String(body)
	return true
}

// addVector writes a vector<V> whose body f builds.
func addVector(b *cryptobyte.Builder, f func(b *cryptobyte.Builder)) {
	child := cryptobyte.NewBuilder(nil)
	f(child)
	body, err := child.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	addOpaque(b, body)
}

// readVectorOf reads a vector<V> of elements, calling elem for each until the
// body is consumed. An element parser that does not consume the body, or that
// fails, fails the whole vector.
func readVectorOf(s *cryptobyte.String, elem func(s *cryptobyte.String) bool) bool {
	var body cryptobyte.String
	if !readVector(s, &body) {
		return false
	}
	for !body.Empty() {
		if !elem(&body) {
			return false
		}
	}
	return true
}

// readOptional reads the presence byte of optional<T>. Any value but 0 or 1
// is malformed. See RFC 9420, Section 2.1.3.
func readOptional(s *cryptobyte.String, present *bool) bool {
	var p uint8
	if !s.ReadUint8(&p) || p > 1 {
		return false
	}
	*present = p == 1
	return true
}

// addOptional writes the presence byte of optional<T> and, when present,
// the value that f builds.
func addOptional(b *cryptobyte.Builder, present bool, f func(b *cryptobyte.Builder)) {
	if !present {
		b.AddUint8(0)
		return
	}
	b.AddUint8(1)
	f(b)
}

// readBool reads a TLS boolean (a uint8 that is 0 or 1).
func readBool(s *cryptobyte.String, out *bool) bool {
	return readOptional(s, out)
}

// marshal runs f on a fresh builder and returns the bytes or the first error.
func marshal(f func(b *cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	f(b)
	return b.Bytes()
}

// unmarshal parses data as one complete structure named what: f must succeed
// and consume every byte. See RFC 9420, Section 2.1 (no trailing data).
func unmarshal(data []byte, what string, f func(s *cryptobyte.String) bool) error {
	s := cryptobyte.String(data)
	if !f(&s) {
		return &ParseError{What: what, Reason: "truncated, non-minimal or invalid encoding"}
	}
	if !s.Empty() {
		return &ParseError{What: what, Reason: fmt.Sprintf("%d trailing bytes", len(s))}
	}
	return nil
}
