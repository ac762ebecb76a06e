package mls

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// This file saves and restores a Group's state for the client's encrypted
// store. The encoding is TLS-style like the wire structures, led by a
// format version. It holds the secrets the group still needs (never those
// already deleted): the tree's private keys, the epoch's secrets, the
// secret trees with their ratchet positions (so that a restored member
// never reuses a generation), the transcript hashes, the proposals of the
// epoch, the past-epoch window and recent resumption PSKs. The long-term
// signature key is stored apart and given back to RestoreGroup.

// groupStateVersion is the format version MarshalState writes. Version 2
// adds the references of declined proposals after the status; version 1
// states (without them) are still read.
const groupStateVersion = 2

// MarshalState encodes the group's state. It refuses while a commit is
// pending: merge or discard it first, so that a restored group does not
// hold a commit the relay may have rejected. The output is secret.
func (g *Group) MarshalState() ([]byte, error) {
	if g.pending != nil {
		return nil, errors.New("mls: cannot save the state while a commit is pending")
	}
	priv, err := g.priv.Bytes()
	if err != nil {
		return nil, err
	}
	wire, err := g.tree.wire()
	if err != nil {
		return nil, err
	}
	return marshal(func(b *cryptobyte.Builder) {
		b.AddUint16(groupStateVersion)
		b.AddUint16(uint16(g.cs))
		g.gc.marshal(b)
		wire.marshal(b)
		addOpaque(b, priv)
		s := g.secrets
		for _, x := range [][]byte{s.senderData, s.encryption, s.exporter, s.external, s.confirmation, s.membership, s.resumption, s.authenticator, s.init} {
			addOpaque(b, x)
		}
		addOpaque(b, g.interim)
		addOpaque(b, g.confirmationTag)
		marshalSecretTree(b, g.prot.tree)
		addVector(b, func(b *cryptobyte.Builder) {
			for _, cp := range g.proposals {
				addOpaque(b, cp.ref)
				cp.sender.marshal(b)
				cp.proposal.marshal(b)
			}
		})
		addVector(b, func(b *cryptobyte.Builder) {
			for _, k := range g.pendingUpdates {
				data, err := k.Bytes()
				if err != nil {
					b.SetError(err)
					return
				}
				addOpaque(b, data)
			}
		})
		addVector(b, func(b *cryptobyte.Builder) {
			for _, e := range slices.Sorted(maps.Keys(g.resumption)) {
				b.AddUint64(e)
				addOpaque(b, g.resumption[e])
			}
		})
		addVector(b, func(b *cryptobyte.Builder) {
			for _, p := range g.past {
				b.AddUint64(p.prot.epoch)
				addOpaque(b, p.prot.groupContext)
				addOpaque(b, p.prot.senderDataSecret)
				addOpaque(b, p.prot.membershipKey)
				marshalSecretTree(b, p.prot.tree)
				addVector(b, func(b *cryptobyte.Builder) {
					for _, l := range slices.Sorted(maps.Keys(p.sigKeys)) {
						b.AddUint32(uint32(l))
						addOpaque(b, p.sigKeys[l])
					}
				})
			}
		})
		var status uint8
		switch {
		case g.removed:
			status = 1
		case g.reinit:
			status = 2
		}
		b.AddUint8(status)
		addVector(b, func(b *cryptobyte.Builder) {
			for _, cp := range g.proposals {
				if cp.declined {
					addOpaque(b, cp.ref)
				}
			}
		})
	})
}

// RestoreGroup decodes a state saved by MarshalState. sigKey is the
// member's signature key, which must be its leaf's.
func RestoreGroup(cfg Config, data []byte, sigKey *SignaturePrivateKey) (*Group, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if sigKey == nil {
		return nil, errors.New("mls: RestoreGroup needs the signature key")
	}
	s := cryptobyte.String(data)
	var version uint16
	if !s.ReadUint16(&version) {
		return nil, &ParseError{What: "group state", Reason: "truncated"}
	}
	if version != 1 && version != groupStateVersion {
		return nil, fmt.Errorf("mls: group state has format version %d, this package reads versions 1 and %d", version, groupStateVersion)
	}
	g := &Group{cfg: cfg, sigKey: sigKey, resumption: map[uint64][]byte{}}
	var cs uint16
	var wire RatchetTree
	var priv []byte
	var sec [9][]byte
	bad := func(what string) (*Group, error) {
		return nil, &ParseError{What: "group state", Reason: what}
	}
	if !s.ReadUint16(&cs) || !g.gc.unmarshal(&s) || !wire.unmarshal(&s) || !readOpaqueCopy(&s, &priv) {
		return bad("group context, tree or private keys")
	}
	g.cs = CipherSuite(cs)
	if _, err := g.cs.params(); err != nil {
		return nil, err
	}
	if g.gc.CipherSuite != g.cs {
		return bad("cipher suite mismatch")
	}
	for i := range sec {
		if !readOpaqueCopy(&s, &sec[i]) {
			return bad("epoch secrets")
		}
	}
	g.secrets = &EpochSecrets{cs: g.cs, senderData: sec[0], encryption: sec[1], exporter: sec[2], external: sec[3], confirmation: sec[4], membership: sec[5], resumption: sec[6], authenticator: sec[7], init: sec[8]}
	if !readOpaqueCopy(&s, &g.interim) || !readOpaqueCopy(&s, &g.confirmationTag) {
		return bad("transcript hashes")
	}
	var err error
	if g.tree, err = newRatchetTree(g.cs, wire); err != nil {
		return nil, err
	}
	if g.priv, err = parseTreePrivateKeys(g.cs, priv); err != nil {
		return nil, err
	}
	clear(priv)
	own := g.tree.leaf(g.priv.Leaf)
	if own == nil {
		return bad("own leaf is blank")
	}
	if string(own.SignatureKey) != string(sigKey.pub) {
		return nil, errors.New("mls: signature key does not match the restored group's own leaf")
	}
	if g.gcBytes, err = g.gc.Marshal(); err != nil {
		return nil, err
	}
	st, ok := unmarshalSecretTree(&s, g.cs)
	if !ok {
		return bad("secret tree")
	}
	g.prot = &epochProtection{suite: g.cs, groupID: g.gc.GroupID, epoch: g.gc.Epoch, groupContext: g.gcBytes, senderDataSecret: g.secrets.senderData, membershipKey: g.secrets.membership, tree: st}
	if !readVectorOf(&s, func(s *cryptobyte.String) bool {
		cp := &cachedProposal{proposal: new(Proposal)}
		if !readOpaqueCopy(s, &cp.ref) || !cp.sender.unmarshal(s) || !cp.proposal.unmarshal(s) {
			return false
		}
		g.proposals = append(g.proposals, cp)
		return true
	}) {
		return bad("proposals")
	}
	if !readVectorOf(&s, func(s *cryptobyte.String) bool {
		var data []byte
		if !readOpaqueCopy(s, &data) {
			return false
		}
		k, err := g.cs.NewHPKEPrivateKey(data)
		clear(data)
		if err != nil {
			return false
		}
		g.pendingUpdates = append(g.pendingUpdates, k)
		return true
	}) {
		return bad("pending updates")
	}
	if !readVectorOf(&s, func(s *cryptobyte.String) bool {
		var e uint64
		var psk []byte
		if !s.ReadUint64(&e) || !readOpaqueCopy(s, &psk) {
			return false
		}
		g.resumption[e] = psk
		return true
	}) {
		return bad("resumption PSKs")
	}
	if !readVectorOf(&s, func(s *cryptobyte.String) bool {
		p := &pastEpoch{prot: &epochProtection{suite: g.cs, groupID: g.gc.GroupID}, sigKeys: map[LeafIndex][]byte{}}
		if !s.ReadUint64(&p.prot.epoch) || !readOpaqueCopy(s, &p.prot.groupContext) ||
			!readOpaqueCopy(s, &p.prot.senderDataSecret) || !readOpaqueCopy(s, &p.prot.membershipKey) {
			return false
		}
		var ok bool
		if p.prot.tree, ok = unmarshalSecretTree(s, g.cs); !ok {
			return false
		}
		if !readVectorOf(s, func(s *cryptobyte.String) bool {
			var l uint32
			var key []byte
			if !s.ReadUint32(&l) || !readOpaqueCopy(s, &key) {
				return false
			}
			p.sigKeys[LeafIndex(l)] = key
			return true
		}) {
			return false
		}
		g.past = append(g.past, p)
		return true
	}) {
		return bad("past epochs")
	}
	var status uint8
	if !s.ReadUint8(&status) || status > 2 {
		return bad("status")
	}
	if version >= 2 && !readVectorOf(&s, func(s *cryptobyte.String) bool {
		var ref []byte
		if !readOpaqueCopy(s, &ref) {
			return false
		}
		cp := g.findProposal(ref)
		if cp == nil {
			return false
		}
		cp.declined = true
		return true
	}) {
		return bad("declined proposals")
	}
	if !s.Empty() {
		return bad("trailing data")
	}
	g.removed, g.reinit = status == 1, status == 2
	return g, nil
}

// marshalSecretTree encodes a secret tree's remaining node secrets and
// its ratchets with their positions and retained keys.
func marshalSecretTree(b *cryptobyte.Builder, t *secretTree) {
	b.AddUint32(t.leafCount)
	b.AddUint32(t.maxForwardDistance)
	b.AddUint32(uint32(t.maxRetainedKeys))
	addVector(b, func(b *cryptobyte.Builder) {
		for _, x := range slices.Sorted(maps.Keys(t.nodes)) {
			b.AddUint32(uint32(x))
			addOpaque(b, t.nodes[x])
		}
	})
	addVector(b, func(b *cryptobyte.Builder) {
		for _, l := range slices.Sorted(maps.Keys(t.ratchets)) {
			b.AddUint32(uint32(l))
			for _, r := range t.ratchets[l] {
				addOpaque(b, r.secret)
				b.AddUint32(r.next)
				addVector(b, func(b *cryptobyte.Builder) {
					for _, gen := range slices.Sorted(maps.Keys(r.retained)) {
						k := r.retained[gen]
						b.AddUint32(gen)
						addOpaque(b, k.key)
						addOpaque(b, k.nonce)
					}
				})
			}
		}
	})
}

func unmarshalSecretTree(s *cryptobyte.String, cs CipherSuite) (*secretTree, bool) {
	t := &secretTree{cs: cs, nodes: map[nodeIndex][]byte{}, ratchets: map[LeafIndex]*[2]ratchet{}}
	var maxRetained uint32
	if !s.ReadUint32(&t.leafCount) || !s.ReadUint32(&t.maxForwardDistance) || !s.ReadUint32(&maxRetained) {
		return nil, false
	}
	t.maxRetainedKeys = int(maxRetained)
	width := nodeWidth(t.leafCount)
	if !readVectorOf(s, func(s *cryptobyte.String) bool {
		var x uint32
		var secret []byte
		if !s.ReadUint32(&x) || x >= width || !readOpaqueCopy(s, &secret) {
			return false
		}
		t.nodes[nodeIndex(x)] = secret
		return true
	}) {
		return nil, false
	}
	ok := readVectorOf(s, func(s *cryptobyte.String) bool {
		var l uint32
		if !s.ReadUint32(&l) || l >= t.leafCount {
			return false
		}
		rs := new([2]ratchet)
		for i := range rs {
			r := &rs[i]
			if !readOpaqueCopy(s, &r.secret) || !s.ReadUint32(&r.next) {
				return false
			}
			if !readVectorOf(s, func(s *cryptobyte.String) bool {
				var k ratchetKey
				if !s.ReadUint32(&k.generation) || !readOpaqueCopy(s, &k.key) || !readOpaqueCopy(s, &k.nonce) || k.generation >= r.next {
					return false
				}
				if r.retained == nil {
					r.retained = map[uint32]ratchetKey{}
				}
				r.retained[k.generation] = k
				r.order = append(r.order, k.generation)
				return true
			}) {
				return false
			}
		}
		t.ratchets[LeafIndex(l)] = rs
		return true
	})
	return t, ok
}
