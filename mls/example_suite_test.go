package mls_test

import (
	"fmt"

	"github.com/tainik/tainik/mls"
)

// A signature made with SignWithLabel verifies only under the same label, so
// a signature over one structure can never be replayed as another.
func ExampleCipherSuite_SignWithLabel() {
	cs := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	key, err := cs.GenerateSignatureKey()
	if err != nil {
		panic(err)
	}
	sig, err := cs.SignWithLabel(key, "LeafNodeTBS", []byte("content"))
	if err != nil {
		panic(err)
	}
	fmt.Println(cs.VerifyWithLabel(key.PublicKey(), "LeafNodeTBS", []byte("content"), sig))
	fmt.Println(cs.VerifyWithLabel(key.PublicKey(), "KeyPackageTBS", []byte("content"), sig))
	// Output:
	// <nil>
	// mls: invalid signature
}

// EncryptWithLabel is HPKE bound to a label and a context; here in the
// post-quantum X-Wing suite.
func ExampleCipherSuite_EncryptWithLabel() {
	cs := mls.MLS_256_XWING_CHACHA20POLY1305_SHA512_Ed25519
	recipient, err := cs.GenerateHPKEKey()
	if err != nil {
		panic(err)
	}
	ct, err := cs.EncryptWithLabel(recipient.PublicKey(), "Welcome", []byte("group info"), []byte("joiner secret"))
	if err != nil {
		panic(err)
	}
	pt, err := cs.DecryptWithLabel(recipient, "Welcome", []byte("group info"), ct)
	fmt.Printf("%s %v\n", pt, err)
	// Output: joiner secret <nil>
}

// A cipher suite this package does not offer is refused by number and name.
func ExampleUnsupportedSuiteError() {
	_, err := mls.CipherSuite(77).GenerateHPKEKey()
	fmt.Println(err)
	// Output: mls: cipher suite 77 (MLS_128_MLKEM512_AES128GCM_SHA256_Ed25519) is not supported
}
