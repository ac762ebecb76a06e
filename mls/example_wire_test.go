package mls_test

import (
	"fmt"

	"github.com/tainik/tainik/mls"
)

func ExampleUnmarshalMLSMessage() {
	// A KeyPackage as a client publishes it, wrapped in an MLSMessage.
	kp := &mls.KeyPackage{
		Version:     mls.ProtocolMLS10,
		CipherSuite: 1,
		InitKey:     make([]byte, 32),
		LeafNode: mls.LeafNode{
			EncryptionKey: make([]byte, 32),
			SignatureKey:  make([]byte, 32),
			Credential:    mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice")},
			Capabilities: mls.Capabilities{
				Versions:     []mls.ProtocolVersion{mls.ProtocolMLS10},
				CipherSuites: []mls.CipherSuite{1},
				Credentials:  []mls.CredentialType{mls.CredentialBasic},
			},
			Source:   mls.LeafNodeSourceKeyPackage,
			Lifetime: &mls.Lifetime{NotBefore: 0, NotAfter: 1 << 40},
		},
	}
	data, err := (&mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp}).Marshal()
	if err != nil {
		panic(err)
	}

	// A receiver decodes it and dispatches on the wire format.
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		panic(err)
	}
	switch m.WireFormat {
	case mls.WireFormatKeyPackage:
		fmt.Printf("key package for %s, %d bytes\n", m.KeyPackage.LeafNode.Credential.Identity, len(data))
	default:
		fmt.Println("not a key package")
	}

	// Trailing bytes are refused.
	_, err = mls.UnmarshalMLSMessage(append(data, 0))
	fmt.Println(err)
	// Output:
	// key package for alice, 147 bytes
	// mls: malformed MLSMessage: 1 trailing bytes
}
