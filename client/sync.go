package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tainik/tainik/mls"
	"github.com/tainik/tainik/relay"
	relayclient "github.com/tainik/tainik/relay/client"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// payload is the plaintext of an MLS application message.
type payload struct {
	ID   string    `json:"id"`
	Type string    `json:"type"` // text, keypackage, group-invite, rename, leave
	Text string    `json:"text,omitempty"`
	Sent time.Time `json:"sent"`
	// KeyPackage is a spare KeyPackage of the sender, for adding it to
	// groups (type keypackage).
	KeyPackage []byte `json:"keypackage,omitempty"`
	// Invite is a group invitation (type group-invite).
	Invite *contactAccept `json:"invite,omitempty"`
	// Expires is when a text disappears; Timer sets the conversation's
	// timer (type disappear).
	Expires time.Time     `json:"expires,omitzero"`
	Timer   time.Duration `json:"timer,omitempty"`
	// File is an attachment (type text).
	File *FileRef `json:"file,omitempty"`
}

// SyncReport says what a Sync brought.
type SyncReport struct {
	NewContacts []string
	New         []Message
	NewConvs    []string
	// More is set when Sync stopped reading a queue that still holds
	// messages (a flood of contact requests), or a long log: Sync again.
	More bool
	// Failed lists the parts of the Sync that failed (see SyncError).
	Failed []Failure
	// Waiting lists work that did not get done this time and is retried
	// (an answer to a contact request that has not reached the
	// requester's relay yet); it is not a failure.
	Waiting []Failure
}

// Sync accepts contact requests, completes connections this side asked
// for, sends answers waiting in the outbox, and reads every
// conversation's log from where it stopped.
//
// A part that fails (a relay that is down or misbehaves, a log that is
// gone) does not stop the others: what was read is saved and in the
// report, and the error is a *SyncError naming each failure. Sync tries
// the failed parts again next time.
func (c *Client) Sync(ctx context.Context) (*SyncReport, error) {
	rep := new(SyncReport)
	if err := c.acceptRequests(ctx, rep); err != nil {
		return rep, err // the store could not be saved
	}
	if err := c.completeConnects(ctx, rep); err != nil {
		return rep, err
	}
	// Joining a group appends to Convs; the new ones are read too.
	failed := map[string]bool{}
	for i := 0; i < len(c.st.Convs); i++ {
		if err := c.syncConv(ctx, c.st.Convs[i], rep); err != nil {
			rep.fail(c.st.Convs[i].Name, err)
			failed[c.st.Convs[i].ID] = true
		}
	}
	c.afterSync(ctx, rep, failed)
	// Last, so that answers waiting on a requester's relay cannot use up
	// the time the conversations need.
	c.flushOutbox(ctx, rep, failed)
	c.expire()
	if err := c.save(); err != nil {
		return rep, err
	}
	if len(rep.Failed) > 0 {
		return rep, &SyncError{Failed: rep.Failed}
	}
	return rep, nil
}

// Failure is one part of a Sync that failed.
type Failure struct {
	What string // a conversation's name, or what else failed
	Err  error
}

// SyncError is returned by Sync when some parts failed; the rest was
// read and saved, and the report holds it.
type SyncError struct{ Failed []Failure }

func (e *SyncError) Error() string {
	var b strings.Builder
	for i, f := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", f.What, f.Err)
	}
	return b.String()
}

// Unwrap returns the failures' errors, for errors.Is and errors.As.
func (e *SyncError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

func (r *SyncReport) fail(what string, err error) {
	r.Failed = append(r.Failed, Failure{what, err})
}

// outboxKeep is how long an answer to a contact request is retried.
const outboxKeep = 7 * 24 * time.Hour

// outboxTimeout bounds one attempt to send an answer, and outboxBudget
// all the attempts of one Sync; maxOutbox bounds the answers waiting.
var (
	outboxTimeout = 10 * time.Second // variables for the tests
	outboxBudget  = 20 * time.Second
)

const (
	maxOutbox = 256
	// An answer that failed waits before its next attempt, twice as
	// long each time from outboxFirstWait up to outboxMaxWait, so that
	// answers to dead or silent relays cannot take every Sync's budget
	// from the others.
	outboxFirstWait = 30 * time.Second
	outboxMaxWait   = 6 * time.Hour
)

// outboxItem is an answer to a contact request, waiting to reach the
// requester's relay. MsgID stays the same across attempts, so a retry
// after a lost answer is not delivered twice.
type outboxItem struct {
	Relay   string
	QueueID relay.ID
	MsgID   relay.MsgID
	Payload []byte
	Until   time.Time
	For     string // the contact's name, for errors
	Conv    string // the conversation made for the requester
	// Next is when to try again, and Tries how often it failed.
	Next  time.Time `json:",omitzero"`
	Tries int       `json:",omitempty"`
	// MaybeDelivered is set once an attempt went out and its answer
	// was lost: the answer may have arrived.
	MaybeDelivered bool `json:",omitempty"`
	// Stopped marks an answer given up that may have arrived: nothing
	// more is sent, and its contact goes if the requester has not shown
	// up by Until.
	Stopped bool `json:",omitempty"`
	// Tracked is set on answers whose conversation records whether the
	// requester showed up (Conversation.Heard). Stores from before that
	// cannot tell, and their contacts are never removed.
	Tracked bool `json:",omitempty"`
}

// flushOutbox sends the answers that are due, within outboxBudget, trying
// each relay at most until it fails once. An answer the relay refuses for
// good (no such queue), or that has waited outboxKeep, is given up; so is
// the oldest past maxOutbox.
func (c *Client) flushOutbox(ctx context.Context, rep *SyncReport, failed map[string]bool) {
	if len(c.st.Outbox) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, outboxBudget)
	defer cancel()
	now := c.now()
	var keep []*outboxItem
	down := map[string]error{}
	live := 0 // answers still being tried, markers not counted
	for _, it := range c.st.Outbox {
		if !it.Stopped {
			live++
		}
	}
	for _, it := range c.st.Outbox {
		if !it.Stopped {
			live-- // now the number after it
		}
		switch {
		case it.Stopped:
			// Given up, but it may have arrived: wait for the
			// requester to show up, or for Until.
			if c.settleStopped(it, rep, failed) {
				keep = append(keep, it)
			}
			continue
		case live >= maxOutbox:
			keep = c.giveUpAnswer(keep, it, errors.New("too many answers waiting"), rep, failed)
			continue
		case now.Before(it.Next):
			keep = append(keep, it)
			continue
		}
		err := down[it.Relay]
		if err == nil && ctx.Err() != nil {
			keep = append(keep, it) // out of time: next Sync
			continue
		}
		if err != nil {
			keep = append(keep, it) // its relay failed just now: next Sync
			continue
		}
		err = func() error {
			ctx, cancel := context.WithTimeout(ctx, outboxTimeout)
			defer cancel()
			rc, err := c.conn(ctx, it.Relay)
			if err != nil {
				return relayclient.NotSent(err)
			}
			return rc.Send(ctx, it.QueueID, it.MsgID, it.Payload, nil)
		}()
		if err == nil {
			continue
		}
		if !relayclient.Refused(err) {
			it.MaybeDelivered = true
		}
		var re *relay.Error
		gone := errors.As(err, &re) && (re.Code == relay.CodeNotFound || re.Code == relay.CodeBadPadding || re.Code == relay.CodeQueueLocked)
		if gone || !now.Before(it.Until) {
			keep = c.giveUpAnswer(keep, it, err, rep, failed)
			continue
		}
		if re == nil { // the relay itself failed, not this answer
			down[it.Relay] = err
		}
		it.Tries++
		it.Next = now.Add(min(outboxFirstWait<<min(it.Tries-1, 20), outboxMaxWait))
		rep.Waiting = append(rep.Waiting, Failure{"answer to " + it.For, err})
		keep = append(keep, it)
	}
	c.st.Outbox = keep
}

// heard says whether the requester of an answer has shown up in the
// conversation made for it: an entry of theirs processed here, or (in
// stores from before Heard was kept) the KeyPackage they publish after
// joining.
func (c *Client) heard(cv *Conversation) bool {
	if cv.Heard || len(cv.Messages) > 0 {
		return true
	}
	for _, ct := range c.st.Contacts {
		if ct.Conversation == cv.ID && ct.KeyPackage != nil {
			return true
		}
	}
	return false
}

// giveUpAnswer stops trying an answer that cannot be delivered and
// returns keep, with the answer kept as a stopped marker if it may have
// arrived. If it never left (every attempt was refused or could not be
// sent) and the requester never showed up, the contact and conversation
// made for it go at once; if it may have arrived, they go only if the
// requester has not shown up within another outboxKeep (settleStopped).
func (c *Client) giveUpAnswer(keep []*outboxItem, it *outboxItem, err error, rep *SyncReport, failed map[string]bool) []*outboxItem {
	cv := c.conv(it.Conv)
	switch {
	case cv == nil || c.heard(cv) || !it.Tracked:
		rep.fail("answer to "+it.For, fmt.Errorf("given up: %w", err))
		return keep
	case it.MaybeDelivered || failed[cv.ID]:
		rep.fail("answer to "+it.For, fmt.Errorf("given up; the contact stays until they write or a week passes: %w", err))
		it.Stopped, it.Until, it.Payload = true, c.now().Add(outboxKeep), nil
		return append(keep, it)
	}
	c.dropConv(cv)
	rep.fail("answer to "+it.For, fmt.Errorf("given up, and the contact removed: %w", err))
	return keep
}

// settleStopped decides about a stopped answer's contact: it stays once
// the requester shows up, and goes if they have not by Until. It says
// whether the marker stays.
func (c *Client) settleStopped(it *outboxItem, rep *SyncReport, failed map[string]bool) bool {
	cv := c.conv(it.Conv)
	switch {
	case cv == nil || c.heard(cv) || !it.Tracked:
		return false
	case failed[cv.ID] || c.now().Before(it.Until):
		return true
	}
	c.dropConv(cv)
	rep.fail("answer to "+it.For, errors.New("the requester never joined: the contact removed"))
	return false
}

// dropConv removes a conversation made for a contact request, with its
// contact.
func (c *Client) dropConv(cv *Conversation) {
	c.st.Contacts = slices.DeleteFunc(c.st.Contacts, func(ct *Contact) bool { return ct.Conversation == cv.ID })
	c.st.Convs = slices.DeleteFunc(c.st.Convs, func(x *Conversation) bool { return x == cv })
	delete(c.groups, cv.ID)
	delete(c.st.NeedKeyPackage, cv.ID)
}

// readQueue receives a queue's messages and hands each to handle, then
// acknowledges it; an error from handle stops it with that message left
// on the relay, and is returned as it is. A receive returns at most relay.MaxReceive messages
// (fewer if they are large), so it reads until the queue is empty, as
// the relay pushed the rest already and will not announce them again,
// until stop says so, or for receiveRounds receives (then rep.More), so
// that a flood of garbage to a contact address does not hold the
// profile.
func (c *Client) readQueue(ctx context.Context, rc *relayclient.Client, q relayclient.Queue, rep *SyncReport, stop func() bool, handle func(payload []byte) error) error {
	for round := 0; !stop(); round++ {
		if round == receiveRounds {
			rep.More = true
			return nil
		}
		msgs, err := rc.Receive(ctx, q)
		if err != nil {
			return fmt.Errorf("client: read queue: %w", err)
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			if err := handle(m.Payload); err != nil {
				return err
			}
			if err := rc.Ack(ctx, q, m.MsgID); err != nil {
				return fmt.Errorf("client: acknowledge: %w", err)
			}
		}
	}
	return nil
}

// receiveRounds bounds the receives of one queue in one Sync.
const receiveRounds = 10

// acceptRequests reads every invitation's queue. One that fails (its
// relay down) is reported and kept; the others are read.
func (c *Client) acceptRequests(ctx context.Context, rep *SyncReport) error {
	var keep []*inviteState
	for _, inv := range c.st.Invites {
		ok, err := c.readInvite(ctx, inv, rep)
		if err != nil {
			what := "contact requests"
			if inv.Name != "" {
				what = "contact requests for " + inv.Name
			}
			rep.fail(what, err)
			ok = true
		}
		if ok {
			keep = append(keep, inv)
		}
	}
	c.st.Invites = keep
	return c.save()
}

// readInvite accepts the requests waiting on one invitation's queue and
// says whether the invitation stays (it is reusable and has not expired,
// or nobody has used it yet).
func (c *Client) readInvite(ctx context.Context, inv *inviteState, rep *SyncReport) (bool, error) {
	rc, err := c.conn(ctx, inv.Queue.Relay)
	if err != nil {
		return true, err
	}
	q := inv.Queue.handle()
	used := false
	err = c.readQueue(ctx, rc, q, rep, func() bool { return used && !inv.Reusable }, func(payload []byte) error {
		if used && !inv.Reusable {
			return nil // the rest of a one-time link's requests go
		}
		name, err := c.accept(ctx, inv, payload)
		var bad *badRequestError
		switch {
		case err == nil:
			used = true
			rep.NewContacts = append(rep.NewContacts, name)
		case errors.As(err, &bad):
			// A request that does not open is dropped: anyone who
			// holds the link can send garbage.
		default:
			// This device's relay failed it: the request stays for
			// the next sync.
			return err
		}
		return nil
	})
	var re *relay.Error
	if errors.As(err, &re) && re.Code == relay.CodeNotFound {
		return false, nil // expired on the relay
	}
	if err != nil {
		return true, err
	}
	if (used && !inv.Reusable) || c.now().After(inv.Expires) {
		rc.DeleteQueue(ctx, q)
		return false, nil
	}
	return true, nil
}

func (c *Client) uniqueName(want string) string {
	name := want
	for i := 2; ; i++ {
		if _, err := c.Contact(name); err != nil {
			return name
		}
		name = fmt.Sprintf("%s-%d", want, i)
	}
}

// accept turns one contact request into a two-member group.
func (c *Client) accept(ctx context.Context, inv *inviteState, sealed []byte) (string, error) {
	content, err := relay.Unpad(sealed)
	if err != nil {
		return "", &badRequestError{err}
	}
	plain, err := openWith(inv.RequestKey, "tainik contact request v1", content)
	if err != nil {
		return "", &badRequestError{err}
	}
	var req contactRequest
	if err := json.Unmarshal(plain, &req); err != nil {
		return "", &badRequestError{err}
	}
	kp, err := mls.UnmarshalKeyPackage(req.KeyPackage)
	if err != nil {
		return "", &badRequestError{err}
	}
	id, err := credentialIdentity(&kp.LeafNode.Credential, kp.LeafNode.SignatureKey)
	if err != nil {
		return "", &badRequestError{err}
	}
	if !id.Equal(ed25519.PublicKey(req.Identity)) {
		return "", &badRequestError{errors.New("client: contact request identity does not match its KeyPackage")}
	}
	if _, err := relay.ParseAddress(req.ReplyRelay); err != nil {
		return "", &badRequestError{err}
	}
	name := inv.Name
	if name == "" {
		name = fmt.Sprintf("contact-%d", len(c.st.Contacts)+1)
	}
	name = c.uniqueName(name)
	cv, g, err := c.newConv(ctx, name, true)
	if err != nil {
		return "", err
	}
	// On failure the half-made conversation goes; the request stays on
	// the relay for the next sync.
	drop := func() {
		c.st.Convs = slices.DeleteFunc(c.st.Convs, func(x *Conversation) bool { return x == cv })
		delete(c.groups, cv.ID)
	}
	welcome, from, err := c.commit(ctx, cv, g, addOptions(kp))
	if err != nil {
		drop()
		if errors.Is(err, errCommitRefused) {
			return "", &badRequestError{err}
		}
		return "", err
	}
	acc := contactAccept{Identity: c.Identity(), Welcome: welcome, Relay: cv.Relay, LogID: cv.LogID, LogToken: cv.LogToken, From: from}
	out, err := sealTo(req.ReplyKey, "tainik contact accept v1", mustJSON(acc))
	if err != nil {
		drop()
		return "", &badRequestError{err}
	}
	// The answer goes to the requester's relay, which the requester
	// chose: it is sent from the outbox, so that a relay that is down,
	// slow or hostile delays only this answer, not the rest of Sync.
	c.st.Outbox = append(c.st.Outbox, &outboxItem{Relay: req.ReplyRelay, QueueID: req.ReplyID, MsgID: randomMsgID(), Payload: out, Until: c.now().Add(outboxKeep), For: name, Conv: cv.ID, Tracked: true})
	c.st.Contacts = append(c.st.Contacts, &Contact{Name: name, Identity: id, Conversation: cv.ID})
	c.st.NeedKeyPackage[cv.ID] = true
	return name, c.save()
}

// newConv creates a one-member group and its log on the home relay.
func (c *Client) newConv(ctx context.Context, name string, direct bool) (*Conversation, *mls.Group, error) {
	rc, err := c.conn(ctx, c.st.Relay)
	if err != nil {
		return nil, nil, err
	}
	gid := make([]byte, 16)
	rand.Read(gid)
	kp, secrets, err := mls.NewKeyPackage(suite, deviceCredential(c.ident, c.sig.PublicKey()), c.sig, mls.KeyPackageOptions{})
	if err != nil {
		return nil, nil, err
	}
	g, err := mls.NewGroup(mlsConfig, gid, kp, secrets, c.sig, nil)
	if err != nil {
		return nil, nil, err
	}
	l, err := rc.CreateLog(ctx, gid, g.Epoch())
	if err != nil {
		return nil, nil, fmt.Errorf("client: create group log: %w", err)
	}
	cv := &Conversation{ID: hex.EncodeToString(gid), Name: name, Direct: direct, Relay: c.st.Relay, LogID: l.ID, LogToken: l.Token, Next: 1}
	if err := c.storeGroup(cv, g); err != nil {
		return nil, nil, err
	}
	c.st.Convs = append(c.st.Convs, cv)
	return cv, g, c.save()
}

// errNothingToCommit is returned by a commit's build function when, after
// a re-base, the commit is no longer needed.
var errNothingToCommit = errors.New("client: nothing to commit")

// errCommitRefused wraps an error of the MLS library making a commit, for
// example over an invalid KeyPackage.
var errCommitRefused = errors.New("client: commit refused")

// commit makes a commit with the options build returns for the group's
// current state, appends it to the log, re-basing (read the log, build
// again) when another member's commit won the epoch, and merges it. It
// returns the Welcome, if any, and the log position a new member starts
// reading at.
func (c *Client) commit(ctx context.Context, cv *Conversation, g *mls.Group, build func(*mls.Group) (mls.CommitOptions, error)) ([]byte, uint64, error) {
	rc, err := c.conn(ctx, cv.Relay)
	if err != nil {
		return nil, 0, err
	}
	for attempt := 0; ; attempt++ {
		opts, err := build(g)
		if err != nil {
			return nil, 0, err
		}
		out, err := g.Commit(opts)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", errCommitRefused, err)
		}
		msg, err := out.Commit.Marshal()
		if err != nil {
			g.DiscardPendingCommit()
			return nil, 0, err
		}
		seq, _, err := rc.Append(ctx, cv.log(), msg)
		var re *relay.Error
		if errors.As(err, &re) && re.Code == relay.CodeStaleEpoch && attempt < 5 {
			g.DiscardPendingCommit()
			if err := c.syncConv(ctx, cv, new(SyncReport)); err != nil {
				return nil, 0, err
			}
			if g, err = c.group(cv); err != nil {
				return nil, 0, err
			}
			continue
		}
		if sent(err) {
			// The commit may have landed although its answer did not
			// arrive; discarding it then would leave this member
			// behind for good. The search gets its own time, as the
			// caller's may be what ran out.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), findTimeout)
			if s, ok := c.findAppended(fctx, cv, msg); ok {
				seq, err = s, nil
			}
			cancel()
		}
		if err != nil {
			g.DiscardPendingCommit()
			return nil, 0, fmt.Errorf("client: append commit: %w", err)
		}
		if _, err := g.MergePendingCommit(); err != nil {
			return nil, 0, fmt.Errorf("client: merge commit: %w", err)
		}
		c.checkDirect(cv, g)
		c.markOwn(cv, seq)
		if err := c.storeGroup(cv, g); err != nil {
			return nil, 0, err
		}
		var welcome []byte
		if out.Welcome != nil {
			if welcome, err = out.Welcome.Marshal(); err != nil {
				return nil, 0, err
			}
		}
		return welcome, seq + 1, c.save()
	}
}

func addOptions(kp *mls.KeyPackage) func(*mls.Group) (mls.CommitOptions, error) {
	return func(*mls.Group) (mls.CommitOptions, error) {
		return mls.CommitOptions{Add: []*mls.KeyPackage{kp}}, nil
	}
}

// removeOptions removes every leaf of the given identities, looked up
// again after each re-base because leaves move.
func (c *Client) removeOptions(ids ...ed25519.PublicKey) func(*mls.Group) (mls.CommitOptions, error) {
	return func(g *mls.Group) (mls.CommitOptions, error) {
		var leaves []mls.LeafIndex
		for _, m := range g.Members() {
			id, err := credentialIdentity(&m.Credential, m.SignatureKey)
			if err != nil || m.Leaf == g.OwnLeaf() {
				continue
			}
			for _, want := range ids {
				if id.Equal(want) {
					leaves = append(leaves, m.Leaf)
				}
			}
		}
		if len(leaves) == 0 {
			return mls.CommitOptions{}, errNothingToCommit
		}
		return mls.CommitOptions{Remove: leaves}, nil
	}
}

func (cv *Conversation) log() relayclient.Log {
	return relayclient.Log{ID: cv.LogID, Token: cv.LogToken}
}

// markOwn records that this device wrote entry seq, so that reading the
// log skips it.
func (c *Client) markOwn(cv *Conversation, seq uint64) {
	if seq == cv.Next {
		cv.Next++
		return
	}
	cv.Own = append(cv.Own, seq)
}

// completeConnects reads the reply queue of every contact request this
// device sent. One that fails is reported and kept; the others are read.
func (c *Client) completeConnects(ctx context.Context, rep *SyncReport) error {
	var keep []*pendingState
	for _, p := range c.st.Pending {
		done, err := c.readReply(ctx, p, rep)
		if err != nil {
			rep.fail("answer from "+p.Name, err)
		}
		if !done {
			keep = append(keep, p)
		}
	}
	c.st.Pending = keep
	return c.save()
}

// readReply reads one reply queue and says whether the connection is
// complete (the answer opened, and the queue is deleted).
func (c *Client) readReply(ctx context.Context, p *pendingState, rep *SyncReport) (bool, error) {
	rc, err := c.conn(ctx, p.Queue.Relay)
	if err != nil {
		return false, err
	}
	q := p.Queue.handle()
	done := false
	err = c.readQueue(ctx, rc, q, rep, func() bool { return done }, func(payload []byte) error {
		if !done && c.join(ctx, p, payload, rep) == nil {
			done = true
		}
		return nil
	})
	if err != nil && !done { // once joined, the queue goes anyway
		return false, err
	}
	if done {
		rc.DeleteQueue(ctx, q)
	}
	return done, nil
}

func (c *Client) join(ctx context.Context, p *pendingState, sealed []byte, rep *SyncReport) error {
	content, err := relay.Unpad(sealed)
	if err != nil {
		return err
	}
	plain, err := openWith(p.ReplyKey, "tainik contact accept v1", content)
	if err != nil {
		return err
	}
	var acc contactAccept
	if err := json.Unmarshal(plain, &acc); err != nil {
		return err
	}
	wm, err := mls.UnmarshalMLSMessage(acc.Welcome)
	if err != nil || wm.Welcome == nil {
		return errors.New("client: contact accept carries no Welcome")
	}
	kp, err := mls.UnmarshalKeyPackage(p.KeyPackage)
	if err != nil {
		return err
	}
	secrets, err := mls.ParseKeyPackageSecrets(p.Secrets)
	if err != nil {
		return err
	}
	g, err := mls.JoinFromWelcome(mlsConfig, wm.Welcome, kp, secrets, c.sig, nil)
	if err != nil {
		return fmt.Errorf("client: join conversation: %w", err)
	}
	found := false
	for _, m := range g.Members() {
		if id, err := credentialIdentity(&m.Credential, m.SignatureKey); err == nil && id.Equal(ed25519.PublicKey(p.InviterIdentity)) {
			found = true
		}
	}
	if !found {
		return errors.New("client: the conversation does not include the inviter")
	}
	if c.conv(hex.EncodeToString(g.GroupID())) != nil {
		return errors.New("client: the answer names a conversation this device has already")
	}
	if len(g.Members()) != 2 {
		return errors.New("client: the answer's conversation does not have exactly two members")
	}
	cv := &Conversation{ID: hex.EncodeToString(g.GroupID()), Name: p.Name, Direct: true, Relay: acc.Relay, LogID: acc.LogID, LogToken: acc.LogToken, Next: acc.From}
	if err := c.storeGroup(cv, g); err != nil {
		return err
	}
	c.st.Convs = append(c.st.Convs, cv)
	name := c.uniqueName(p.Name)
	c.st.Contacts = append(c.st.Contacts, &Contact{Name: name, Identity: ed25519.PublicKey(p.InviterIdentity), Conversation: cv.ID})
	c.checkDirect(cv, g)
	rep.NewContacts = append(rep.NewContacts, name)
	c.st.NeedKeyPackage[cv.ID] = true
	return c.save()
}

// syncConv reads a conversation's log from where it stopped.
func (c *Client) syncConv(ctx context.Context, cv *Conversation, rep *SyncReport) error {
	if cv.Removed {
		return nil
	}
	rc, err := c.conn(ctx, cv.Relay)
	if err != nil {
		return err
	}
	g, err := c.group(cv)
	if err != nil {
		return err
	}
	for round := 0; ; round++ {
		if round == readRounds {
			rep.More = true // a long backlog: the next Sync goes on
			return nil
		}
		ents, err := readLog(ctx, rc, cv.log(), cv.Next)
		if err != nil {
			return fmt.Errorf("client: read conversation %s: %w", cv.Name, err)
		}
		for _, e := range ents.Entries {
			if e.Seq < cv.Next {
				continue
			}
			cv.Next = e.Seq + 1
			if i := slices.Index(cv.Own, e.Seq); i >= 0 {
				cv.Own = slices.Delete(cv.Own, i, i+1)
				continue
			}
			c.processEntry(cv, g, e, rep)
			if cv.Removed {
				break
			}
		}
		if err := c.storeGroup(cv, g); err != nil {
			return err
		}
		if !ents.More || len(ents.Entries) == 0 || cv.Removed {
			return nil
		}
	}
}

// processEntry processes one log entry. An entry that does not process
// (garbage appended by a member, or a message from before this device
// joined) is skipped: the log is shared by all members.
func (c *Client) processEntry(cv *Conversation, g *mls.Group, e relay.LogEntry, rep *SyncReport) {
	m, err := mls.UnmarshalMLSMessage(e.Message)
	if err != nil {
		return
	}
	p, err := g.Process(m)
	if err != nil {
		return
	}
	if p.Sender.Type == mls.SenderMember && p.Sender.Leaf != g.OwnLeaf() {
		cv.Heard = true
	}
	if p.Commit != nil {
		if p.Commit.RemovedSelf {
			cv.Removed = true
		}
		c.checkDirect(cv, g)
		c.st.NeedCommit[cv.ID] = false
		return
	}
	if p.Proposal != nil {
		// Tainik's clients add and remove members by commits. A
		// proposal is accepted only for what a member may ask for
		// itself (its own removal, a fresh leaf key); anything else
		// would have this device commit a change another member
		// chose, an Add into a 1:1 for one, and is dropped.
		if !selfProposal(p) {
			g.DeclineProposal(p.ProposalRef)
			return
		}
		c.st.NeedCommit[cv.ID] = true
		return
	}
	if p.ApplicationData == nil {
		return
	}
	var pl payload
	if err := json.Unmarshal(p.ApplicationData, &pl); err != nil {
		return
	}
	var from []byte
	for _, mem := range g.Members() {
		if mem.Leaf == p.Sender.Leaf {
			from, _ = credentialIdentity(&mem.Credential, mem.SignatureKey)
		}
	}
	if pl.Type != "text" {
		c.control(cv, e.Seq, from, &pl, rep)
		return
	}
	for _, old := range cv.Messages {
		if old.ID == pl.ID {
			return
		}
	}
	if !pl.Expires.IsZero() && !c.now().Before(pl.Expires) {
		return // expired before it was read
	}
	if pl.File != nil {
		if err := pl.File.check(); err != nil {
			pl.File = nil
			pl.Text += " [attachment refused: " + strings.TrimPrefix(err.Error(), "client: ") + "]"
		}
	}
	msg := Message{Seq: e.Seq, ID: pl.ID, From: hex.EncodeToString(from), Sender: c.nameOf(from), Text: pl.Text, Sent: pl.Sent, Expires: pl.Expires, File: pl.File, Conv: cv.ID}
	cv.Messages = append(cv.Messages, msg)
	rep.New = append(rep.New, msg)
}

// selfProposal says whether a proposal only concerns its sender: an
// Update of its own leaf, or a Remove of itself.
func selfProposal(p *mls.Processed) bool {
	if p.Sender.Type != mls.SenderMember {
		return false
	}
	switch p.Proposal.Type {
	case mls.ProposalTypeUpdate:
		return true
	case mls.ProposalTypeRemove:
		return p.Proposal.Remove.Removed == p.Sender.Leaf
	}
	return false
}

// Send sends a text message to a conversation.
func (c *Client) Send(ctx context.Context, cv *Conversation, text string) (*Message, error) {
	return c.send(ctx, cv, text, nil)
}

func (c *Client) send(ctx context.Context, cv *Conversation, text string, file *FileRef) (*Message, error) {
	if err := c.checkKeys(cv); err != nil {
		return nil, err
	}
	if cv.Removed {
		return nil, fmt.Errorf("client: you are no longer a member of %s", cv.Name)
	}
	if err := c.syncConv(ctx, cv, new(SyncReport)); err != nil {
		return nil, err
	}
	if cv.Removed {
		return nil, fmt.Errorf("client: you are no longer a member of %s", cv.Name)
	}
	g, err := c.group(cv)
	if err != nil {
		return nil, err
	}
	pl := c.newPayload("text")
	pl.Text = text
	pl.File = file
	if cv.Disappear > 0 {
		pl.Expires = pl.Sent.Add(cv.Disappear)
	}
	seq, err := c.sendPayload(ctx, cv, g, pl)
	if err != nil {
		return nil, err
	}
	msg := Message{Seq: seq, ID: pl.ID, From: hex.EncodeToString(c.Identity()), Sender: "me", Text: text, Sent: pl.Sent, Mine: true, Expires: pl.Expires, File: file, Conv: cv.ID}
	cv.Messages = append(cv.Messages, msg)
	return &msg, c.save()
}

func (c *Client) newPayload(typ string) *payload {
	idb := make([]byte, 16)
	rand.Read(idb)
	return &payload{ID: hex.EncodeToString(idb), Type: typ, Sent: c.now().UTC().Truncate(time.Second)}
}

// sendPayload encrypts and appends an application message; the caller
// has read the log up to date.
func (c *Client) sendPayload(ctx context.Context, cv *Conversation, g *mls.Group, pl *payload) (uint64, error) {
	if err := c.refresh(ctx, cv, g); err != nil {
		return 0, err
	}
	m, err := g.Encrypt(mustJSON(pl), nil)
	if err != nil {
		return 0, fmt.Errorf("client: encrypt: %w", err)
	}
	data, err := m.Marshal()
	if err != nil {
		return 0, err
	}
	// The ratchet moved: save it before the message leaves, so that a
	// crash cannot reuse a key.
	if err := c.storeGroup(cv, g); err != nil {
		return 0, err
	}
	if err := c.save(); err != nil {
		return 0, err
	}
	rc, err := c.conn(ctx, cv.Relay)
	if err != nil {
		return 0, err
	}
	// A disappearing message leaves the relay when it leaves the members'
	// stores. Only application messages get a lifetime: members catching
	// up need every commit and proposal.
	var ttl time.Duration
	if !pl.Expires.IsZero() {
		ttl = pl.Expires.Sub(pl.Sent)
	}
	seq, _, err := rc.AppendExpiring(ctx, cv.log(), data, ttl)
	if sent(err) {
		// It may have landed: look before saying it did not, or the
		// user sends it twice (and this device would read its own
		// message as another's).
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), findTimeout)
		if s, ok := c.findAppended(fctx, cv, data); ok {
			seq, err = s, nil
		}
		cancel()
	}
	if err != nil {
		return 0, fmt.Errorf("client: send: %w", err)
	}
	c.markOwn(cv, seq)
	return seq, c.save()
}

// checkDirect raises the key-change alarm when a 1:1 conversation holds
// anyone but this user and the contact.
func (c *Client) checkDirect(cv *Conversation, g *mls.Group) {
	if !cv.Direct {
		return
	}
	var ct *Contact
	for _, x := range c.st.Contacts {
		if x.Conversation == cv.ID {
			ct = x
		}
	}
	if ct == nil {
		return
	}
	for _, m := range g.Members() {
		id, err := credentialIdentity(&m.Credential, m.SignatureKey)
		if err == nil && (id.Equal(c.Identity()) || id.Equal(ct.Identity)) {
			continue
		}
		ct.KeyChanged = "an unknown key " + hex.EncodeToString(id) + " joined"
		ct.Verified = false
	}
}

// checkKeys refuses to send into a conversation whose keys changed
// without the user verifying them.
func (c *Client) checkKeys(cv *Conversation) error {
	for _, ct := range c.st.Contacts {
		if ct.Conversation == cv.ID && ct.KeyChanged != "" {
			return fmt.Errorf("client: not sent: the keys in your conversation with %s changed (%s); compare safety numbers in person, then run 'tainik verify %s'", ct.Name, ct.KeyChanged, ct.Name)
		}
	}
	return nil
}

// badRequestError is a contact request that cannot be accepted whatever
// happens: it is dropped.
type badRequestError struct{ err error }

func (e *badRequestError) Error() string { return "client: bad contact request: " + e.err.Error() }
func (e *badRequestError) Unwrap() error { return e.err }

// findAppended looks for msg in the log past what this member has read.
func (c *Client) findAppended(ctx context.Context, cv *Conversation, msg []byte) (uint64, bool) {
	// The relay may still be storing it when the first search reads
	// the log, and the connection may be coming back: search again, a
	// second apart, while ctx lasts, up to three complete reads.
	for complete := 0; ; {
		seq, found, err := c.searchLog(ctx, cv, msg)
		if found {
			return seq, true
		}
		if err == nil || refusedForGood(err) {
			complete++ // the relay answered: no such entry, or never will
		}
		if complete == 3 {
			return 0, false
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(time.Second):
		}
	}
}

// refusedForGood says whether err is a relay's refusal that asking again
// will not change (as opposed to busy, failing or shutting down).
func refusedForGood(err error) bool {
	var re *relay.Error
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case relay.CodeTooManyRequests, relay.CodeInternal, relay.CodeShuttingDown:
		return false
	}
	return true
}

// searchLog reads cv's log from its cursor for an entry equal to msg. It
// waits for the relay connection (within ctx) rather than fail while it
// is coming back.
func (c *Client) searchLog(ctx context.Context, cv *Conversation, msg []byte) (uint64, bool, error) {
	rc := c.conns[cv.Relay]
	if rc == nil {
		var err error
		if rc, err = c.conn(ctx, cv.Relay); err != nil {
			return 0, false, err
		}
	}
	for from, round := cv.Next, 0; round < readRounds; round++ {
		ents, err := readLog(ctx, rc, cv.log(), from)
		if err != nil {
			return 0, false, err
		}
		for _, e := range ents.Entries {
			if bytes.Equal(e.Message, msg) {
				return e.Seq, true, nil
			}
			from = e.Seq + 1
		}
		if !ents.More || len(ents.Entries) == 0 {
			return 0, false, nil
		}
	}
	return 0, false, nil
}

// findTimeout bounds the search for an append whose answer was lost.
const findTimeout = 30 * time.Second

// sent says whether err leaves it open that a request reached the relay
// and was carried out: it went out, and then the connection dropped, the
// answer did not come in time, or the caller's context ended.
func sent(err error) bool { return err != nil && !relayclient.Refused(err) }

// readRounds bounds the reads of one log in one Sync (100 entries or 1 MiB
// each).
const readRounds = 1000

// errLogAnswer is returned for a relay's answer to LogRead that does not
// move forward: such a relay would keep a client reading for ever.
var errLogAnswer = errors.New("client: the relay's log entries are out of order or do not advance: it is misbehaving")

// readLog reads a log from from on and checks that the answer moves
// forward: entries at or after from, in strictly increasing order, below
// the largest sequence number, and some if the relay says there are more.
func readLog(ctx context.Context, rc *relayclient.Client, l relayclient.Log, from uint64) (*relay.LogEntries, error) {
	ents, err := rc.Read(ctx, l, from)
	if err != nil {
		return nil, err
	}
	next := from
	for _, e := range ents.Entries {
		if e.Seq < next || e.Seq == math.MaxUint64 {
			return nil, errLogAnswer
		}
		next = e.Seq + 1
	}
	if ents.More && len(ents.Entries) == 0 {
		return nil, errLogAnswer
	}
	return ents, nil
}

// refresh commits a fresh UpdatePath in a restored conversation before its
// first send.
func (c *Client) refresh(ctx context.Context, cv *Conversation, g *mls.Group) error {
	if !cv.Refresh {
		return nil
	}
	update := func(*mls.Group) (mls.CommitOptions, error) { return mls.CommitOptions{ForcePath: true}, nil }
	if _, _, err := c.commit(ctx, cv, g, update); err != nil {
		return fmt.Errorf("client: refresh keys of restored conversation: %w", err)
	}
	cv.Refresh = false
	return c.save()
}
