package mls_test

import (
	"bytes"
	"fmt"
	"log"
	"time"

	"github.com/tainik/tainik/mls"
)

func ExampleNewKeyPackage() {
	cs := mls.CipherSuite(1) // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

	// The long-term signing key, kept in the client's store.
	sigKey, err := cs.GenerateSignatureKey()
	if err != nil {
		log.Fatal(err)
	}
	cred := mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice@example.org")}

	kp, secrets, err := mls.NewKeyPackage(cs, cred, sigKey, mls.KeyPackageOptions{
		Lifetime: 30 * 24 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Publish the KeyPackage, wrapped in an MLSMessage, to the delivery
	// service.
	published, err := (&mls.MLSMessage{
		Version:    mls.ProtocolMLS10,
		WireFormat: mls.WireFormatKeyPackage,
		KeyPackage: kp,
	}).Marshal()
	if err != nil {
		log.Fatal(err)
	}

	// Keep the private keys, encrypted, until a Welcome names the
	// KeyPackage by its reference.
	stored, err := secrets.Bytes()
	if err != nil {
		log.Fatal(err)
	}
	restored, err := mls.ParseKeyPackageSecrets(stored)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println("published a key package:", len(published) > 0)
	fmt.Println("init key restored:", bytes.Equal(restored.InitKey.PublicKey(), kp.InitKey))
	fmt.Println("ref restored:", bytes.Equal(restored.Ref, secrets.Ref))
	// Output:
	// published a key package: true
	// init key restored: true
	// ref restored: true
}
