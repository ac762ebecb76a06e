package mls

import (
	"encoding/json"
	"fmt"
)

// checkWelcomeVector opens a Welcome with the KeyPackage's init key,
// verifies the GroupInfo's signature with signer_pub and its confirmation
// tag with the epoch derived from joiner_secret and no PSKs. See RFC 9420,
// Section 12.4.3.1.
func checkWelcomeVector(raw json.RawMessage) error {
	var v struct {
		CipherSuite CipherSuite `json:"cipher_suite"`
		InitPriv    hexBytes    `json:"init_priv"`
		SignerPub   hexBytes    `json:"signer_pub"`
		KeyPackage  hexBytes    `json:"key_package"`
		Welcome     hexBytes    `json:"welcome"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	cs, err := vectorSuite(v.CipherSuite)
	if err != nil {
		return err
	}
	kpMsg, err := UnmarshalMLSMessage(v.KeyPackage)
	if err != nil {
		return err
	}
	if kpMsg.KeyPackage == nil {
		return fmt.Errorf("key_package: wire format %v is not mls_key_package", kpMsg.WireFormat)
	}
	wMsg, err := UnmarshalMLSMessage(v.Welcome)
	if err != nil {
		return err
	}
	if wMsg.Welcome == nil {
		return fmt.Errorf("welcome: wire format %v is not mls_welcome", wMsg.WireFormat)
	}
	initPriv, err := cs.NewHPKEPrivateKey(v.InitPriv)
	if err != nil {
		return err
	}
	opened, err := openWelcome(cs, wMsg.Welcome, kpMsg.KeyPackage, initPriv, nil, nil)
	if err != nil {
		return err
	}
	gi := opened.GroupInfo
	if err := gi.verifySignature(cs, v.SignerPub); err != nil {
		return err
	}
	gc, err := gi.GroupContext.Marshal()
	if err != nil {
		return err
	}
	epoch, err := opened.intermediate.epoch(gc)
	if err != nil {
		return err
	}
	return verifyConfirmationTag(cs, epoch, gi)
}
