package mls

import (
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
)

// externalInitLabel is the HPKE exporter context of external initialization.
// See RFC 9420, Section 8.3.
const externalInitLabel = "MLS 1.0 external init secret"

// externalInit is the joiner's side of external initialization: it sets up
// an HPKE base-mode sender context to the group's external_pub with empty
// info and exports the new init_secret. kemOutput goes into the
// ExternalInit proposal. See RFC 9420, Section 8.3.
func (cs CipherSuite) externalInit(externalPub []byte) (kemOutput []byte, init *initSecret, err error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	n := cs.SecretSize()
	var secret []byte
	if k := p.stdKEM(); k != nil {
		pk, err := k.NewPublicKey(externalPub)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: invalid %v external_pub: %w", cs, err)
		}
		enc, sender, err := hpke.NewSender(pk, p.hpkeKDF(), p.hpkeAEAD(), nil)
		if err != nil {
			return nil, nil, err
		}
		if secret, err = sender.Export(externalInitLabel, n); err != nil {
			return nil, nil, err
		}
		kemOutput = enc
	} else {
		pk, err := circlX448().UnmarshalBinaryPublicKey(externalPub)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: invalid %v external_pub: %w", cs, err)
		}
		sender, err := p.circlSuite().NewSender(pk, nil)
		if err != nil {
			return nil, nil, err
		}
		enc, sealer, err := sender.Setup(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		secret = sealer.Export([]byte(externalInitLabel), uint(n))
		kemOutput = enc
	}
	return kemOutput, &initSecret{cs: cs, secret: secret}, nil
}

// errExternalInit is returned for every failure to decapsulate a kem_output,
// so that the reason does not leak.
var errExternalInit = errors.New("mls: invalid ExternalInit kem_output")

// externalInitSecret is the group members' side of external initialization:
// it recovers the init_secret that the joiner exported for kemOutput, with
// the external private key of the epoch (see EpochSecrets.externalKey).
// See RFC 9420, Section 8.3.
func (cs CipherSuite) externalInitSecret(externalPriv *HPKEPrivateKey, kemOutput []byte) (*initSecret, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	if externalPriv == nil || externalPriv.suite != cs {
		return nil, errors.New("mls: external private key of another cipher suite")
	}
	n := cs.SecretSize()
	var secret []byte
	if externalPriv.std != nil {
		r, err := hpke.NewRecipient(kemOutput, externalPriv.std, p.hpkeKDF(), p.hpkeAEAD(), nil)
		if err != nil {
			return nil, errExternalInit
		}
		if secret, err = r.Export(externalInitLabel, n); err != nil {
			return nil, err
		}
	} else {
		r, err := p.circlSuite().NewReceiver(externalPriv.circl, nil)
		if err != nil {
			return nil, err
		}
		opener, err := r.Setup(kemOutput)
		if err != nil {
			return nil, errExternalInit
		}
		secret = opener.Export([]byte(externalInitLabel), uint(n))
	}
	return &initSecret{cs: cs, secret: secret}, nil
}
