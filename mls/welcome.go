package mls

import "golang.org/x/crypto/cryptobyte"

// PathSecret is the path secret a Welcome gives a new member for the lowest
// node its direct path shares with the committer's. See RFC 9420,
// Section 12.4.3.1.
type PathSecret struct {
	PathSecret []byte
}

func (p *PathSecret) marshal(b *cryptobyte.Builder)       { addOpaque(b, p.PathSecret) }
func (p *PathSecret) unmarshal(s *cryptobyte.String) bool { return readOpaqueCopy(s, &p.PathSecret) }

// GroupSecrets is the plaintext that a Welcome encrypts to each new member.
// See RFC 9420, Section 12.4.3.1.
type GroupSecrets struct {
	JoinerSecret []byte
	// PathSecret is nil when the new member's leaf shares no updated node
	// with the committer's path.
	PathSecret *PathSecret
	PSKs       []PreSharedKeyID
}

func (g *GroupSecrets) marshal(b *cryptobyte.Builder) {
	addOpaque(b, g.JoinerSecret)
	addOptional(b, g.PathSecret != nil, func(b *cryptobyte.Builder) { g.PathSecret.marshal(b) })
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range g.PSKs {
			g.PSKs[i].marshal(b)
		}
	})
}

func (g *GroupSecrets) unmarshal(s *cryptobyte.String) bool {
	var present bool
	if !readOpaqueCopy(s, &g.JoinerSecret) || !readOptional(s, &present) {
		return false
	}
	if present {
		g.PathSecret = new(PathSecret)
		if !g.PathSecret.unmarshal(s) {
			return false
		}
	}
	g.PSKs = []PreSharedKeyID{}
	return readVectorOf(s, func(s *cryptobyte.String) bool {
		var id PreSharedKeyID
		if !id.unmarshal(s) {
			return false
		}
		g.PSKs = append(g.PSKs, id)
		return true
	})
}

// Marshal returns the TLS encoding of the GroupSecrets.
func (g *GroupSecrets) Marshal() ([]byte, error) { return marshal(g.marshal) }

// UnmarshalGroupSecrets decodes a GroupSecrets, rejecting trailing bytes.
func UnmarshalGroupSecrets(data []byte) (*GroupSecrets, error) {
	g := new(GroupSecrets)
	if err := unmarshal(data, "GroupSecrets", g.unmarshal); err != nil {
		return nil, err
	}
	return g, nil
}

// EncryptedGroupSecrets is a GroupSecrets encrypted to the new member whose
// KeyPackageRef is NewMember. See RFC 9420, Section 12.4.3.1.
type EncryptedGroupSecrets struct {
	NewMember             []byte
	EncryptedGroupSecrets HPKECiphertext
}

func (e *EncryptedGroupSecrets) marshal(b *cryptobyte.Builder) {
	addOpaque(b, e.NewMember)
	e.EncryptedGroupSecrets.marshal(b)
}

func (e *EncryptedGroupSecrets) unmarshal(s *cryptobyte.String) bool {
	return readOpaqueCopy(s, &e.NewMember) && e.EncryptedGroupSecrets.unmarshal(s)
}

// Welcome brings new members into a group: the group secrets encrypted to
// each of them and the GroupInfo encrypted under a key derived from the
// joiner secret. See RFC 9420, Section 12.4.3.1.
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (w *Welcome) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(w.CipherSuite))
	addVector(b, func(b *cryptobyte.Builder) {
		for i := range w.Secrets {
			w.Secrets[i].marshal(b)
		}
	})
	addOpaque(b, w.EncryptedGroupInfo)
}

func (w *Welcome) unmarshal(s *cryptobyte.String) bool {
	w.Secrets = []EncryptedGroupSecrets{}
	return s.ReadUint16((*uint16)(&w.CipherSuite)) &&
		readVectorOf(s, func(s *cryptobyte.String) bool {
			var e EncryptedGroupSecrets
			if !e.unmarshal(s) {
				return false
			}
			w.Secrets = append(w.Secrets, e)
			return true
		}) &&
		readOpaqueCopy(s, &w.EncryptedGroupInfo)
}

// Marshal returns the TLS encoding of the Welcome.
func (w *Welcome) Marshal() ([]byte, error) { return marshal(w.marshal) }

// UnmarshalWelcome decodes a Welcome, rejecting trailing bytes.
func UnmarshalWelcome(data []byte) (*Welcome, error) {
	w := new(Welcome)
	if err := unmarshal(data, "Welcome", w.unmarshal); err != nil {
		return nil, err
	}
	return w, nil
}
