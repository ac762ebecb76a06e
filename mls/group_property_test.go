package mls

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var groupSeed = flag.Uint64("group.seed", 0, "seed of TestGroupProperty (0: from the clock)")

// propertyGroup is the in-process world of TestGroupProperty: the live
// members, and the members removed so far.
type propertyGroup struct {
	t       *testing.T
	cs      CipherSuite
	cfg     Config
	rng     *rand.Rand
	members []*testClient
	removed []*testClient
	next    int
}

// TestGroupProperty runs random sequences of adds, removes, updates,
// commits with and without a path, external joins and application
// messages, and checks after every commit that all members agree and that
// removed members cannot read what follows.
func TestGroupProperty(t *testing.T) {
	seed := *groupSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	for _, cs := range CipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			steps := 80
			switch cs {
			case MLS_256_DHKEMP521_AES256GCM_SHA512_P521, MLS_256_DHKEMP384_AES256GCM_SHA384_P384:
				steps = 25
			}
			if testing.Short() {
				steps /= 4
			}
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with: go test ./mls/ -run 'TestGroupProperty/%s' -group.seed %d", cs, seed)
				}
			}()
			p := &propertyGroup{t: t, cs: cs, cfg: testConfig(), rng: rand.New(rand.NewPCG(seed, uint64(cs)))}
			p.cfg.UsePrivateHandshake = seed%2 == 0
			p.run(steps)
		})
	}
}

func (p *propertyGroup) newClient() *testClient {
	p.next++
	return newTestClient(p.t, p.cs, fmt.Sprintf("member-%d", p.next))
}

func (p *propertyGroup) run(steps int) {
	t := p.t
	first := p.newClient()
	kp, sec := first.keyPackage(t)
	g, err := NewGroup(p.cfg, []byte("property"), kp, sec, first.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	first.g = g
	p.members = []*testClient{first}
	for i := range steps {
		op := p.rng.IntN(6)
		switch {
		case op == 0 && len(p.members) < 12:
			p.add()
		case op == 1 && len(p.members) > 2:
			p.remove()
		case op == 2 && len(p.members) > 1:
			p.update()
		case op == 3:
			p.commit(CommitOptions{ForcePath: p.rng.IntN(2) == 0})
		case op == 4 && len(p.members) < 12:
			p.externalJoin()
		default:
			p.message()
		}
		if t.Failed() {
			t.Fatalf("step %d failed", i)
		}
	}
}

func (p *propertyGroup) pick() *testClient { return p.members[p.rng.IntN(len(p.members))] }

// deliver sends a commit or proposal to every member but from, and checks
// the removed members cannot read it.
func (p *propertyGroup) deliver(from *testClient, m *MLSMessage) {
	t := p.t
	for _, c := range p.members {
		if c == from {
			continue
		}
		if _, err := c.g.Process(roundTrip(t, m)); err != nil {
			t.Fatalf("%s processing from %s: %v", c.name, from.name, err)
		}
	}
	p.checkRemovedCannotRead(m)
}

func (p *propertyGroup) checkRemovedCannotRead(m *MLSMessage) {
	for _, c := range p.removed {
		if _, err := c.g.Process(roundTrip(p.t, m)); !errors.Is(err, ErrRemoved) {
			p.t.Fatalf("removed %s: got %v, want ErrRemoved", c.name, err)
		}
		// Below the group's refusal: the keys it kept are of an older
		// epoch.
		if m.PrivateMessage != nil {
			if _, err := c.g.prot.unprotectPrivate(m.PrivateMessage); !errors.Is(err, ErrWrongEpoch) {
				p.t.Fatalf("removed %s decrypting: got %v, want ErrWrongEpoch", c.name, err)
			}
		}
	}
}

// commit has a random member commit opts, delivers it, and checks
// agreement. It returns the output and the committer.
func (p *propertyGroup) commit(opts CommitOptions) (*CommitOutput, *testClient) {
	t := p.t
	committer := p.pick()
	for len(opts.Remove) > 0 && committer.g.OwnLeaf() == opts.Remove[0] {
		committer = p.pick()
	}
	out, err := committer.g.Commit(opts)
	if err != nil {
		t.Fatalf("%s committing: %v", committer.name, err)
	}
	p.deliver(committer, out.Commit)
	if _, err := committer.g.Process(roundTrip(t, out.Commit)); err != nil {
		t.Fatalf("%s: own commit echoed: %v", committer.name, err)
	}
	return out, committer
}

func (p *propertyGroup) agree() {
	gs := make([]*Group, len(p.members))
	for i, c := range p.members {
		gs[i] = c.g
	}
	checkAgree(p.t, gs...)
}

func (p *propertyGroup) add() {
	c := p.newClient()
	kp, sec := c.keyPackage(p.t)
	out, _ := p.commit(CommitOptions{Add: []*KeyPackage{kp}, ForcePath: p.rng.IntN(2) == 0})
	g, err := JoinFromWelcome(p.cfg, roundTrip(p.t, out.Welcome).Welcome, kp, sec, c.sigKey, nil)
	if err != nil {
		p.t.Fatalf("%s joining: %v", c.name, err)
	}
	c.g = g
	p.members = append(p.members, c)
	p.agree()
}

func (p *propertyGroup) remove() {
	i := p.rng.IntN(len(p.members))
	victim := p.members[i]
	leaf := victim.g.OwnLeaf()
	p.commit(CommitOptions{Remove: []LeafIndex{leaf}})
	if !victim.g.removed {
		p.t.Fatalf("%s not removed", victim.name)
	}
	p.members = append(p.members[:i], p.members[i+1:]...)
	p.removed = append(p.removed, victim)
	p.agree()
}

func (p *propertyGroup) update() {
	c := p.pick()
	m, err := c.g.ProposeUpdate()
	if err != nil {
		p.t.Fatal(err)
	}
	p.deliver(c, m)
	// Someone else commits it.
	for {
		out, committer := p.commit(CommitOptions{})
		if committer != c {
			_ = out
			break
		}
		// Our own Update cannot be committed by us; it lapses with the
		// epoch. Propose again.
		if m, err = c.g.ProposeUpdate(); err != nil {
			p.t.Fatal(err)
		}
		p.deliver(c, m)
	}
	p.agree()
}

func (p *propertyGroup) externalJoin() {
	c := p.newClient()
	gi, err := p.pick().g.GroupInfo(false)
	if err != nil {
		p.t.Fatal(err)
	}
	g, commit, err := JoinExternal(p.cfg, gi, nil, c.cred, c.sigKey, ExternalJoinOptions{})
	if err != nil {
		p.t.Fatalf("%s joining externally: %v", c.name, err)
	}
	c.g = g
	p.deliver(c, commit)
	p.members = append(p.members, c)
	p.agree()
}

func (p *propertyGroup) message() {
	c := p.pick()
	m, err := c.g.Encrypt([]byte("hello from "+c.name), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, r := range p.members {
		if r == c {
			continue
		}
		got, err := r.g.Process(roundTrip(p.t, m))
		if err != nil {
			p.t.Fatalf("%s reading %s: %v", r.name, c.name, err)
		}
		if string(got.ApplicationData) != "hello from "+c.name {
			p.t.Fatalf("%s read %q", r.name, got.ApplicationData)
		}
	}
	p.checkRemovedCannotRead(m)
}
