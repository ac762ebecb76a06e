package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/tainik/tainik/mls"
)

// afterSync does what processing the logs asked for: commit pending
// proposals (a member leaving), publish fresh KeyPackages.
// afterSync does the work the Sync's reads left (commits, removals,
// KeyPackages), except in conversations whose read failed: that work
// waits for the next Sync.
func (c *Client) afterSync(ctx context.Context, rep *SyncReport, failed map[string]bool) {
	for id, need := range c.st.NeedCommit {
		if failed[id] {
			continue
		}
		cv := c.conv(id)
		if need && cv != nil && !cv.Removed {
			empty := func(*mls.Group) (mls.CommitOptions, error) { return mls.CommitOptions{}, nil }
			if err := c.commitIn(ctx, cv, empty); err != nil {
				rep.fail(cv.Name, err)
				continue // the next Sync tries again
			}
		}
		delete(c.st.NeedCommit, id)
	}
	for id, ids := range c.st.NeedRemove {
		if failed[id] {
			continue
		}
		cv := c.conv(id)
		if cv != nil && !cv.Removed {
			// Another member may have removed them first.
			if err := c.commitIn(ctx, cv, c.removeOptions(ids...)); err != nil && !errors.Is(err, errNothingToCommit) {
				rep.fail(cv.Name, err)
				continue
			}
		}
		delete(c.st.NeedRemove, id)
	}
	for id := range c.st.NeedKeyPackage {
		if failed[id] {
			continue
		}
		cv := c.conv(id)
		if cv != nil && !cv.Removed {
			if err := c.publishKeyPackage(ctx, cv); err != nil {
				rep.fail(cv.Name, err)
				continue
			}
		}
		delete(c.st.NeedKeyPackage, id)
	}
}

// commitIn commits in cv's group with the options build gives.
func (c *Client) commitIn(ctx context.Context, cv *Conversation, build func(*mls.Group) (mls.CommitOptions, error)) error {
	g, err := c.group(cv)
	if err != nil {
		return err
	}
	_, _, err = c.commit(ctx, cv, g, build)
	return err
}

// sparesPerConv is how many KeyPackages sent to one contact this device
// keeps: the contact holds the newest, and an invitation made with the
// one before may still be on its way.
const sparesPerConv = 2

// publishKeyPackage sends a KeyPackage to a 1:1 conversation, so that the
// contact can add this device to groups. A KeyPackage made for it and
// not yet sent (an earlier attempt failed) is sent again rather than a
// new one made for every attempt.
func (c *Client) publishKeyPackage(ctx context.Context, cv *Conversation) error {
	var sp *spareKeyPackage
	for _, x := range c.st.Spares {
		if x.Conv == cv.ID && !x.Sent {
			sp = x
		}
	}
	if sp == nil {
		kp, secrets, err := mls.NewKeyPackage(suite, deviceCredential(c.ident, c.sig.PublicKey()), c.sig, mls.KeyPackageOptions{})
		if err != nil {
			return err
		}
		sp = &spareKeyPackage{Conv: cv.ID}
		if sp.KeyPackage, err = kp.Marshal(); err != nil {
			return err
		}
		if sp.Secrets, err = secrets.Bytes(); err != nil {
			return err
		}
		// Its secrets are on disk before the KeyPackage leaves.
		c.st.Spares = append(c.st.Spares, sp)
		if err := c.save(); err != nil {
			return err
		}
	}
	if err := c.syncConv(ctx, cv, new(SyncReport)); err != nil {
		return err
	}
	g, err := c.group(cv)
	if err != nil {
		return err
	}
	pl := c.newPayload("keypackage")
	pl.KeyPackage = sp.KeyPackage
	if _, err := c.sendPayload(ctx, cv, g, pl); err != nil {
		return err
	}
	sp.Sent = true
	c.pruneSpares(cv.ID)
	return nil
}

// pruneSpares keeps, of the KeyPackages sent to conv, the newest
// sparesPerConv, and drops those of conversations this device no longer
// has.
func (c *Client) pruneSpares(conv string) {
	kept := 0
	for i := len(c.st.Spares) - 1; i >= 0; i-- {
		x := c.st.Spares[i]
		drop := x.Conv != "" && c.conv(x.Conv) == nil
		if x.Conv == conv && x.Sent {
			kept++
			drop = kept > sparesPerConv
		}
		if drop {
			c.st.Spares = slices.Delete(c.st.Spares, i, i+1)
		}
	}
}

func (c *Client) contactByConv(cv *Conversation, from []byte) *Contact {
	for _, ct := range c.st.Contacts {
		if ct.Conversation == cv.ID && ct.Identity.Equal(ed25519.PublicKey(from)) {
			return ct
		}
	}
	return nil
}

// control handles an application message that is not text.
func (c *Client) control(cv *Conversation, seq uint64, from []byte, pl *payload, rep *SyncReport) {
	switch pl.Type {
	case "leave":
		if !cv.Direct {
			c.st.NeedRemove[cv.ID] = append(c.st.NeedRemove[cv.ID], ed25519.PublicKey(from))
		}
	case "keypackage":
		ct := c.contactByConv(cv, from)
		if ct == nil || !cv.Direct {
			return
		}
		kp, err := mls.UnmarshalKeyPackage(pl.KeyPackage)
		if err != nil {
			return
		}
		id, err := credentialIdentity(&kp.LeafNode.Credential, kp.LeafNode.SignatureKey)
		if err != nil || !id.Equal(ct.Identity) {
			return
		}
		ct.KeyPackage = pl.KeyPackage
	case "group-invite":
		if !cv.Direct || c.contactByConv(cv, from) == nil || pl.Invite == nil {
			return
		}
		if name, err := c.joinGroup(pl.Invite); err == nil {
			rep.NewConvs = append(rep.NewConvs, name)
			c.st.NeedKeyPackage[cv.ID] = true
		}
	case "disappear":
		if pl.Timer >= 0 && pl.Timer != cv.Disappear {
			// Every member sees who changed the timer: turning it off
			// must not go unnoticed.
			cv.Disappear = pl.Timer
			text := "turned disappearing messages off"
			if pl.Timer > 0 {
				text = "set new messages to disappear after " + pl.Timer.String()
			}
			msg := Message{Seq: seq, ID: pl.ID, From: hex.EncodeToString(from), Sender: c.nameOf(from), Text: text, Sent: pl.Sent, Notice: true, Conv: cv.ID}
			cv.Messages = append(cv.Messages, msg)
			rep.New = append(rep.New, msg)
		}
	case "rename":
		if name := cleanName(pl.Text); !cv.Direct && name != "" {
			cv.Name = c.uniqueConvName(name, cv)
		}
	}
}

func (c *Client) joinGroup(inv *contactAccept) (string, error) {
	wm, err := mls.UnmarshalMLSMessage(inv.Welcome)
	if err != nil || wm.Welcome == nil {
		return "", errors.New("client: group invitation carries no Welcome")
	}
	for i, sp := range c.st.Spares {
		kp, err := mls.UnmarshalKeyPackage(sp.KeyPackage)
		if err != nil {
			continue
		}
		secrets, err := mls.ParseKeyPackageSecrets(sp.Secrets)
		if err != nil {
			continue
		}
		g, err := mls.JoinFromWelcome(mlsConfig, wm.Welcome, kp, secrets, c.sig, nil)
		if err != nil {
			continue
		}
		id := hex.EncodeToString(g.GroupID())
		if c.conv(id) != nil {
			return "", errors.New("client: already in this group")
		}
		cv := &Conversation{ID: id, Relay: inv.Relay, LogID: inv.LogID, LogToken: inv.LogToken, Next: inv.From}
		cv.Name = c.uniqueConvName(cleanName(inv.Name), cv)
		if err := c.storeGroup(cv, g); err != nil {
			return "", err
		}
		c.st.Convs = append(c.st.Convs, cv)
		// A KeyPackage is for one use (RFC 9420, Section 10): its init
		// key goes, so that it cannot open anything later.
		c.st.Spares = slices.Delete(c.st.Spares, i, i+1)
		return cv.Name, nil
	}
	return "", errors.New("client: no KeyPackage of this device opens the group invitation")
}

func (c *Client) uniqueConvName(want string, self *Conversation) string {
	if want == "" {
		want = "group"
	}
	name := want
	for i := 2; ; i++ {
		taken := false
		if _, err := c.Contact(name); err == nil {
			taken = true
		}
		for _, cv := range c.st.Convs {
			if cv != self && !cv.Direct && cv.Name == name {
				taken = true
			}
		}
		if !taken {
			return name
		}
		name = fmt.Sprintf("%s-%d", want, i)
	}
}

// CreateGroup creates a group with this device as its only member.
func (c *Client) CreateGroup(ctx context.Context, name string) (*Conversation, error) {
	if err := c.checkGroupName(name); err != nil {
		return nil, err
	}
	cv, _, err := c.newConv(ctx, name, false)
	return cv, err
}

func (c *Client) syncedGroup(ctx context.Context, cv *Conversation) (*mls.Group, error) {
	if cv.Direct {
		return nil, errors.New("client: this is a 1:1 conversation, not a group: create one with 'tainik group create NAME'")
	}
	if err := c.syncConv(ctx, cv, new(SyncReport)); err != nil {
		return nil, err
	}
	if cv.Removed {
		return nil, fmt.Errorf("client: you are no longer a member of %s", cv.Name)
	}
	return c.group(cv)
}

// AddMember adds a contact to a group, using the contact's latest spare
// KeyPackage, and sends the Welcome through the 1:1 conversation.
func (c *Client) AddMember(ctx context.Context, cv *Conversation, contact string) error {
	ct, err := c.Contact(contact)
	if err != nil {
		return err
	}
	direct := c.conv(ct.Conversation)
	// The contact's KeyPackage may be waiting in the 1:1 log.
	if err := c.syncConv(ctx, direct, new(SyncReport)); err != nil {
		return err
	}
	if ct.KeyPackage == nil {
		return fmt.Errorf("client: no KeyPackage from %s yet: ask them to run 'tainik read', then try again", contact)
	}
	g, err := c.syncedGroup(ctx, cv)
	if err != nil {
		return err
	}
	for _, m := range g.Members() {
		if id, err := credentialIdentity(&m.Credential, m.SignatureKey); err == nil && id.Equal(ct.Identity) {
			return fmt.Errorf("client: %s is already a member of %s", contact, cv.Name)
		}
	}
	kp, err := mls.UnmarshalKeyPackage(ct.KeyPackage)
	if err != nil {
		return err
	}
	welcome, from, err := c.commit(ctx, cv, g, addOptions(kp))
	if err != nil {
		return err
	}
	// A KeyPackage is for one use (RFC 9420, Section 10): the contact's
	// device deletes its secrets once this Welcome opens, so a second
	// group needs the next one it publishes.
	ct.KeyPackage = nil
	dg, err := c.group(direct)
	if err != nil {
		return err
	}
	pl := c.newPayload("group-invite")
	pl.Invite = &contactAccept{Identity: c.Identity(), Welcome: welcome, Relay: cv.Relay, LogID: cv.LogID, LogToken: cv.LogToken, From: from, Name: cv.Name}
	_, err = c.sendPayload(ctx, direct, dg, pl)
	return err
}

// RemoveMember removes a contact from a group. Messages sent afterwards
// are encrypted to keys the removed member does not have.
func (c *Client) RemoveMember(ctx context.Context, cv *Conversation, contact string) error {
	ct, err := c.Contact(contact)
	if err != nil {
		return err
	}
	g, err := c.syncedGroup(ctx, cv)
	if err != nil {
		return err
	}
	_, _, err = c.commit(ctx, cv, g, c.removeOptions(ct.Identity))
	if errors.Is(err, errNothingToCommit) {
		return fmt.Errorf("client: %s is not a member of %s", contact, cv.Name)
	}
	return err
}

// Leave asks the group to remove this device and stops reading it. The
// next member who syncs commits the removal.
func (c *Client) Leave(ctx context.Context, cv *Conversation) error {
	g, err := c.syncedGroup(ctx, cv)
	if err != nil {
		return err
	}
	if len(g.Members()) == 1 {
		cv.Removed = true
		return c.save()
	}
	// MLS does not let a member propose its own removal; it asks, and
	// the next member to sync commits the removal.
	if _, err := c.sendPayload(ctx, cv, g, c.newPayload("leave")); err != nil {
		return err
	}
	cv.Removed = true
	return c.save()
}

// Rename renames a group for every member.
func (c *Client) Rename(ctx context.Context, cv *Conversation, name string) error {
	g, err := c.syncedGroup(ctx, cv)
	if err != nil {
		return err
	}
	if err := c.checkGroupName(name); err != nil {
		return err
	}
	pl := c.newPayload("rename")
	pl.Text = name
	if _, err := c.sendPayload(ctx, cv, g, pl); err != nil {
		return err
	}
	cv.Name = name
	return c.save()
}

// Members names a group's members ("me" for this device).
func (c *Client) Members(cv *Conversation) ([]string, error) {
	g, err := c.group(cv)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range g.Members() {
		id, err := credentialIdentity(&m.Credential, m.SignatureKey)
		if err != nil {
			continue
		}
		if m.Leaf == g.OwnLeaf() || bytes.Equal(id, c.Identity()) {
			out = append(out, "me")
			continue
		}
		out = append(out, c.nameOf(id))
	}
	return out, nil
}
