package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// This file runs the official MLS interoperability test vectors (the
// mlswg/mls-implementations repository, format in its test-vectors.md). It
// lives in the package so that each check reaches the internal operation it
// tests; the cmd/mls-vectors runner and the package tests both call it.

// VectorResult is the outcome of one test-vector file.
type VectorResult struct {
	// Kind is the vector type recognised from the file's content, such as
	// "crypto-basics" or "passive-client".
	Kind                    string
	Passed, Failed, Skipped int
	// Failures and Skips give the case index and the reason for every case
	// that did not pass.
	Failures, Skips []string
}

// vectorKind is one type of test-vector file: how to recognise a case of
// it by the keys it has, and the check of one case. Kinds are tried in
// order; the first whose keys are all present wins.
type vectorKind struct {
	name  string
	keys  []string
	check func(c json.RawMessage) error
}

// vectorKinds is every type of the official vector files, recognised by
// content so that a file of any name is run by the right check.
var vectorKinds = []vectorKind{
	{"tree-math", []string{"n_leaves", "n_nodes", "root"}, checkTreeMathVector},
	{"crypto-basics", []string{"cipher_suite", "ref_hash", "expand_with_label"}, checkCryptoBasicsVector},
	{"deserialization", []string{"vlbytes_header", "length"}, checkDeserializationVector},
	{"secret-tree", []string{"cipher_suite", "sender_data", "leaves"}, checkSecretTreeVector},
	{"message-protection", []string{"cipher_suite", "proposal_priv", "application_priv"}, checkMessageProtectionVector},
	{"key-schedule", []string{"cipher_suite", "initial_init_secret", "epochs"}, checkKeyScheduleVector},
	{"psk_secret", []string{"cipher_suite", "psks", "psk_secret"}, checkPSKSecretVector},
	{"transcript-hashes", []string{"cipher_suite", "authenticated_content", "interim_transcript_hash_before"}, checkTranscriptHashesVector},
	{"messages", []string{"mls_welcome", "mls_group_info", "mls_key_package"}, checkMessagesVector},
	{"tree-operations", []string{"tree_before", "proposal", "tree_after"}, checkTreeOperationsVector},
	{"tree-validation", []string{"cipher_suite", "tree", "resolutions", "tree_hashes"}, checkTreeValidationVector},
	{"treekem", []string{"cipher_suite", "ratchet_tree", "update_paths"}, checkTreeKEMVector},
	{"passive-client", []string{"cipher_suite", "key_package", "initial_epoch_authenticator", "epochs"}, checkPassiveClientVector},
	{"welcome", []string{"cipher_suite", "init_priv", "welcome", "key_package"}, checkWelcomeVector},
}

// vectorSkip marks a case that cannot be run, with the reason.
type vectorSkip struct{ reason string }

func (s *vectorSkip) Error() string { return s.reason }

// loadVectors parses a vector file and recognises its kind from the keys of
// its first case.
func loadVectors(data []byte) (*vectorKind, []json.RawMessage, error) {
	var cases []json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, nil, fmt.Errorf("mls: test vectors are not a JSON array: %w", err)
	}
	if len(cases) == 0 {
		return nil, nil, errors.New("mls: test-vector file has no cases")
	}
	var first map[string]json.RawMessage
	if err := json.Unmarshal(cases[0], &first); err != nil {
		return nil, nil, fmt.Errorf("mls: first test vector is not an object: %w", err)
	}
	for i := range vectorKinds {
		k := &vectorKinds[i]
		match := true
		for _, key := range k.keys {
			if _, ok := first[key]; !ok {
				match = false
				break
			}
		}
		if match {
			return k, cases, nil
		}
	}
	keys := make([]string, 0, len(first))
	for key := range first {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return nil, nil, fmt.Errorf("mls: unrecognised test-vector type (keys %s)", strings.Join(keys, ", "))
}

// RunTestVectors runs every case of one official test-vector file, whatever
// its type, and reports the outcome.
func RunTestVectors(data []byte) (*VectorResult, error) {
	kind, cases, err := loadVectors(data)
	if err != nil {
		return nil, err
	}
	r := &VectorResult{Kind: kind.name}
	for i, c := range cases {
		err := kind.check(c)
		var skip *vectorSkip
		switch {
		case err == nil:
			r.Passed++
		case errors.As(err, &skip):
			r.Skipped++
			r.Skips = append(r.Skips, fmt.Sprintf("case %d: %v", i, err))
		default:
			r.Failed++
			r.Failures = append(r.Failures, fmt.Sprintf("case %d: %v", i, err))
		}
	}
	return r, nil
}

// hexBytes is a byte string that JSON carries in hex.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// checkEqual returns an error naming what differs when got is not want.
func checkEqual(what string, got, want []byte) error {
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: got %x, want %x", what, got, want)
	}
	return nil
}

// vectorSuite returns the case's cipher suite, or an error if this package
// does not implement it.
func vectorSuite(cs CipherSuite) (CipherSuite, error) {
	if _, err := cs.params(); err != nil {
		return 0, err
	}
	return cs, nil
}

// p521Scalar restores the fixed 66-byte encoding of a P-521 private key
// that some vector files write without its leading zero byte (65 bytes);
// RFC 9180, Section 7.1.2 fixes the length, and this package requires it.
// Keys of other suites are returned unchanged.
func p521Scalar(cs CipherSuite, k hexBytes) hexBytes {
	if cs != MLS_256_DHKEMP521_AES256GCM_SHA512_P521 {
		return k
	}
	for len(k) < 66 {
		k = append(hexBytes{0}, k...)
	}
	return k
}
