package server

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// maxUnacked bounds how many queue messages are pushed to a subscriber
// before it acknowledges some.
const maxUnacked = 256

// hub knows which connection subscribes to which queue and log, and wakes
// the subscription's pusher when something is stored.
type hub struct {
	// Lock order: hub.mu, conn.mu, queueSub.mu, conn.wmu.
	mu     sync.Mutex // before conn.mu
	queues map[relay.ID]*queueSub
	logs   map[relay.ID]map[*logSub]struct{}
	// logKeys maps LogWakeKey of each key of logs back to it, and
	// queueKeys QueueWakeKey of each key of queues.
	logKeys   map[relay.ID]relay.ID
	queueKeys map[relay.ID]relay.ID
}

type queueSub struct {
	c    *conn
	key  relay.ID
	rid  relay.ID
	kick chan struct{}
	done chan struct{}

	mu     sync.Mutex
	pushed map[relay.MsgID]struct{}
	// ackedEarly holds ids acknowledged before this subscription pushed
	// them, with the time until which they count: the recipient had them
	// from an earlier connection or a QueueReceive, while a read from
	// the store, the inbox or an offer on its way may still hold them.
	// The pusher skips them. Such a copy is at most seconds old, so an
	// id counts only for ackedEarlyFor: a sender may send the same id
	// again once its tombstone is gone (the dedup window), and that
	// message must be pushed. It keeps the last maxAckedEarly such ids
	// (ackedRing, oldest overwritten first), so a client that
	// acknowledges ids it never got cannot make it grow.
	ackedEarly map[relay.MsgID]time.Time
	ackedRing  []ackedID
	ackedNext  int
	// inbox holds messages stored on this node since the pusher last
	// looked, so that it can push them without reading them back. It
	// has its own lock: the pusher holds mu while it writes to a
	// possibly slow client, and a sender must not wait for that.
	inboxMu    sync.Mutex
	inbox      []store.Message
	inboxBytes int
	// unread is set while the store may hold messages for the pusher
	// that the inbox does not: at the start, after an offer was
	// dropped, after a wake-up without a message (another node stored
	// it, or a sender retried), and while a read from the store has
	// not come back empty. While it is clear and the inbox is empty,
	// the pusher does not read the store: every message this node
	// stores is offered to the inbox once it is durable.
	unread bool
	// backlog is set while the subscriber has the most unacknowledged
	// pushes it may have: offers are dropped (the store has them).
	backlog atomic.Bool
}

// maxInbox bounds a subscription's inbox; past it, the pusher reads the
// store as it would for messages stored elsewhere.
const maxInbox = 2 * maxUnacked

// maxInboxBytes bounds the payload bytes a subscription's inbox holds.
const maxInboxBytes = 256 << 10

// maxAckedEarly bounds ackedEarly. Past it the oldest early-acknowledged
// id is forgotten, and its message may be pushed once more if a read still
// holds it, which delivery at least once allows. It is one full
// acknowledgement.
const maxAckedEarly = relay.MaxAck

// ackedID is a slot of ackedRing.
type ackedID struct {
	id    relay.MsgID
	until time.Time
}

// ackedEarlyFor is how long an early acknowledgement counts: a minute, or
// half the dedup window if that is shorter.
func ackedEarlyFor(dedupWindow time.Duration) time.Duration {
	return min(time.Minute, dedupWindow/2)
}

// ackedEarlyAdd remembers id as acknowledged before it was pushed, until
// the given time. The caller holds sub.mu.
func (sub *queueSub) ackedEarlyAdd(id relay.MsgID, until time.Time) {
	if sub.ackedEarly == nil {
		sub.ackedEarly = make(map[relay.MsgID]time.Time)
	}
	slot := ackedID{id, until}
	if len(sub.ackedRing) < maxAckedEarly {
		sub.ackedRing = append(sub.ackedRing, slot)
	} else {
		// The oldest slot goes; its id stays if it was added again
		// since (the map then holds the later time).
		old := sub.ackedRing[sub.ackedNext]
		if t, ok := sub.ackedEarly[old.id]; ok && t.Equal(old.until) {
			delete(sub.ackedEarly, old.id)
		}
		sub.ackedRing[sub.ackedNext] = slot
		sub.ackedNext = (sub.ackedNext + 1) % maxAckedEarly
	}
	sub.ackedEarly[id] = until
}

// ackedEarlyTake reports whether id was acknowledged early and still
// counts at now, and forgets it. The caller holds sub.mu.
func (sub *queueSub) ackedEarlyTake(id relay.MsgID, now time.Time) bool {
	until, ok := sub.ackedEarly[id]
	if !ok {
		return false
	}
	delete(sub.ackedEarly, id)
	return now.Before(until)
}

// offer gives a message this node has just stored to the subscriber's
// inbox, unless it is backlogged or its inbox is full; then, or when m is
// nil (a message stored elsewhere), it marks the store as unread.
func (sub *queueSub) offer(m *store.Message) {
	sub.inboxMu.Lock()
	if m != nil && !sub.backlog.Load() && len(sub.inbox) < maxInbox && sub.inboxBytes+len(m.Payload) <= maxInboxBytes {
		sub.inbox = append(sub.inbox, *m)
		sub.inboxBytes += len(m.Payload)
	} else {
		sub.unread = true
	}
	sub.inboxMu.Unlock()
}

// mustRead says whether the pusher, having found nothing to take from
// the inbox, has to read the store: when the store may hold what the
// inbox does not, including after takeInbox met a gap (a message not
// offered yet, or a store whose sequence numbers are not consecutive).
// It clears unread, since the read it asks for covers everything stored
// until now.
func (sub *queueSub) mustRead() bool {
	sub.inboxMu.Lock()
	defer sub.inboxMu.Unlock()
	read := sub.unread
	sub.unread = false
	return read
}

// readAgain marks the store as possibly holding more after a read that
// returned messages (it returns at most a window of them).
func (sub *queueSub) readAgain() {
	sub.inboxMu.Lock()
	sub.unread = true
	sub.inboxMu.Unlock()
}

// takeInbox returns the inbox's messages that directly follow seq after,
// at most max, in order, and drops the ones at or before after. A gap
// (a message stored elsewhere, or not yet returned by the store) returns
// nothing: the store has it.
func (sub *queueSub) takeInbox(after uint64, max int) []store.Message {
	sub.inboxMu.Lock()
	defer sub.inboxMu.Unlock()
	if len(sub.inbox) == 0 {
		return nil
	}
	slices.SortFunc(sub.inbox, func(a, b store.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	i := 0
	for i < len(sub.inbox) && sub.inbox[i].Seq <= after {
		i++
	}
	j := i
	for j < len(sub.inbox) && j-i < max && sub.inbox[j].Seq == after+1+uint64(j-i) {
		j++
	}
	out := slices.Clone(sub.inbox[i:j])
	sub.inbox = append(sub.inbox[:0], sub.inbox[j:]...)
	if len(out) == 0 && len(sub.inbox) > 0 {
		// A gap: the pusher reads the store, which returns these
		// too.
		sub.inbox = sub.inbox[:0]
		sub.unread = true
	}
	sub.inboxBytes = 0
	for _, m := range sub.inbox {
		sub.inboxBytes += len(m.Payload)
	}
	if len(sub.inbox) == 0 {
		sub.inbox = nil
	}
	return out
}

type logSub struct {
	c    *conn
	id   relay.ID
	next uint64
	kick chan struct{}
	// done is closed under mu, and the pusher checks it and queues each
	// push under mu, so that a replaced subscription pushes nothing
	// after its replacement was answered.
	mu   sync.Mutex
	done chan struct{}
}

// end stops the log subscription's pusher.
func (sub *logSub) end() {
	sub.mu.Lock()
	close(sub.done)
	sub.mu.Unlock()
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// notifyQueue wakes the queue's local subscriber, first offering it m
// (when this node just stored m; nil otherwise).
func (h *hub) notifyQueue(key relay.ID, m *store.Message) {
	h.mu.Lock()
	sub := h.queues[key]
	h.mu.Unlock()
	if sub == nil {
		return
	}
	sub.offer(m)
	kick(sub.kick)
}

func (h *hub) notifyLog(id relay.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.logs[id] {
		kick(sub.kick)
	}
}

// subscribeQueue makes c the queue's subscriber, ending any other.
func (h *hub) subscribeQueue(c *conn, key, rid relay.ID, max int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := c.ctx.Err(); err != nil {
		return err // closed, and dropConn may have run: register nothing
	}
	old := h.queues[key]
	c.mu.Lock()
	n := len(c.queueSubs) + len(c.logSubs)
	c.mu.Unlock()
	if (old == nil || old.c != c) && n >= max {
		return relay.Errorf(relay.CodeTooManySubscriptions, "at most %d subscriptions per connection", max)
	}
	if old != nil {
		old.end()
		old.c.mu.Lock()
		delete(old.c.queueSubs, key)
		old.c.mu.Unlock()
	}
	sub := &queueSub{c: c, key: key, rid: rid, kick: make(chan struct{}, 1), done: make(chan struct{}), pushed: make(map[relay.MsgID]struct{}), unread: true}
	h.queues[key] = sub
	h.queueKeys[QueueWakeKey(key)] = key
	c.mu.Lock()
	if c.queueSubs == nil {
		c.queueSubs = make(map[relay.ID]*queueSub)
	}
	c.queueSubs[key] = sub
	c.mu.Unlock()
	go sub.run()
	kick(sub.kick)
	return nil
}

func (h *hub) unsubscribeQueue(key relay.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub := h.queues[key]; sub != nil {
		sub.end()
		delete(h.queues, key)
		delete(h.queueKeys, QueueWakeKey(key))
		sub.c.mu.Lock()
		delete(sub.c.queueSubs, key)
		sub.c.mu.Unlock()
	}
}

// acked tells the queue's subscriber, on whichever connection, that ids
// were acknowledged (and deleted). An id it has not pushed yet may still
// be in a batch it read before the acknowledgement, in its inbox, or in an
// offer still on its way from the sender's goroutine: it is remembered
// (see ackedEarly) so that the pusher skips it. The caller answers the
// acknowledgement only after acked returns, so a push of an acknowledged
// message is queued before the answer, never after, as long as ackedEarly
// still holds the id (the last maxAckedEarly such ids, for
// ackedEarlyFor); past that, delivery at least once allows one more push.
func (h *hub) acked(key relay.ID, ids []relay.MsgID) {
	h.mu.Lock()
	sub := h.queues[key]
	h.mu.Unlock()
	if sub == nil {
		return
	}
	until := time.Now().Add(ackedEarlyFor(sub.c.s.cfg.DedupWindow))
	sub.mu.Lock()
	for _, id := range ids {
		if _, ok := sub.pushed[id]; ok {
			delete(sub.pushed, id)
		} else {
			sub.ackedEarlyAdd(id, until)
		}
	}
	sub.mu.Unlock()
	kick(sub.kick)
}

func (h *hub) subscribeLog(c *conn, id relay.ID, from uint64, max int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := c.ctx.Err(); err != nil {
		return err // closed, and dropConn may have run: register nothing
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.logSubs[id]; old != nil {
		old.end()
		delete(h.logs[id], old)
	} else if len(c.queueSubs)+len(c.logSubs) >= max {
		return relay.Errorf(relay.CodeTooManySubscriptions, "at most %d subscriptions per connection", max)
	}
	sub := &logSub{c: c, id: id, next: from, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if h.logs[id] == nil {
		h.logs[id] = make(map[*logSub]struct{})
		h.logKeys[LogWakeKey(id)] = id
	}
	h.logs[id][sub] = struct{}{}
	if c.logSubs == nil {
		c.logSubs = make(map[relay.ID]*logSub)
	}
	c.logSubs[id] = sub
	go sub.run()
	kick(sub.kick)
	return nil
}

// unsubscribeLog ends c's subscription to the log, if it has one.
func (h *hub) unsubscribeLog(c *conn, id relay.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	sub := c.logSubs[id]
	if sub == nil {
		return
	}
	delete(c.logSubs, id)
	delete(h.logs[id], sub)
	if len(h.logs[id]) == 0 {
		delete(h.logs, id)
		delete(h.logKeys, LogWakeKey(id))
	}
	sub.end()
}

func (h *hub) dropConn(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, sub := range c.queueSubs {
		if h.queues[key] == sub {
			delete(h.queues, key)
			delete(h.queueKeys, QueueWakeKey(key))
		}
		sub.end()
	}
	for id, sub := range c.logSubs {
		delete(h.logs[id], sub)
		if len(h.logs[id]) == 0 {
			delete(h.logs, id)
			delete(h.logKeys, LogWakeKey(id))
		}
		sub.end()
	}
	c.queueSubs, c.logSubs = nil, nil
}

// run pushes unacknowledged messages, at most maxUnacked at a time. Its
// cursor starts at zero, so a new subscription redelivers everything not yet
// acknowledged: delivery is at least once.
func (sub *queueSub) run() {
	s := sub.c.s
	var after uint64
	for {
		select {
		case <-sub.kick:
		case <-sub.done:
			return
		case <-sub.c.ctx.Done():
			return
		}
		for {
			sub.mu.Lock()
			window := maxUnacked - len(sub.pushed)
			sub.mu.Unlock()
			sub.backlog.Store(window <= 0)
			if window <= 0 {
				// The store has everything the inbox would hold.
				sub.inboxMu.Lock()
				sub.inbox, sub.inboxBytes, sub.unread = nil, 0, true
				sub.inboxMu.Unlock()
				break
			}
			msgs := sub.takeInbox(after, window)
			if len(msgs) == 0 {
				if !sub.mustRead() {
					break
				}
				var err error
				msgs, err = s.store.Messages(sub.c.ctx, sub.key, after, window, relay.MaxResponseSize/2)
				if err != nil {
					// Try again at the next wake-up.
					sub.readAgain()
					break
				}
				if len(msgs) == 0 {
					break
				}
				sub.readAgain()
			}
			for _, m := range msgs {
				push := relay.Encode(0, &relay.QueuePush{RecipientID: sub.rid, Message: relay.QueueMessage{MsgID: m.ID, Payload: m.Payload}})
				if !sub.c.reserve() {
					return
				}
				// Check and queue under sub.mu, so that an
				// acknowledgement either finds the push queued ahead
				// of its answer or makes the pusher skip it (see
				// acked), and a replaced subscription pushes nothing
				// more (done is closed under sub.mu).
				sub.mu.Lock()
				early := len(sub.ackedEarly) > 0 && sub.ackedEarlyTake(m.ID, time.Now())
				ended := isDone(sub.done)
				mustFlush := false
				if early || ended {
					sub.c.unreserve()
				} else {
					sub.pushed[m.ID] = struct{}{}
					mustFlush = sub.c.enqueue(push)
				}
				sub.mu.Unlock()
				if ended {
					return
				}
				if mustFlush && !sub.c.flush() {
					return
				}
				if !early {
					s.metrics.pushes.Add(1)
				}
				after = m.Seq
			}
		}
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// end stops the subscription's pusher; see run for why under mu.
func (sub *queueSub) end() {
	sub.mu.Lock()
	close(sub.done)
	sub.mu.Unlock()
}

func (sub *logSub) run() {
	s := sub.c.s
	for {
		select {
		case <-sub.kick:
		case <-sub.done:
			return
		case <-sub.c.ctx.Done():
			return
		}
		for {
			entries, more, err := s.store.LogEntries(sub.c.ctx, sub.id, sub.next, 64, relay.MaxResponseSize/2)
			if err != nil || len(entries) == 0 {
				break
			}
			for _, e := range entries {
				push := relay.Encode(0, &relay.LogPush{LogID: sub.id, Entry: relay.LogEntry{Seq: e.Seq, Message: e.Message}})
				if !sub.c.reserve() {
					return
				}
				sub.mu.Lock()
				ended := isDone(sub.done)
				mustFlush := false
				if ended {
					sub.c.unreserve()
				} else {
					mustFlush = sub.c.enqueue(push)
				}
				sub.mu.Unlock()
				if ended || (mustFlush && !sub.c.flush()) {
					return
				}
				s.metrics.pushes.Add(1)
				sub.next = e.Seq + 1
			}
			if !more {
				break
			}
		}
	}
}

// contactLimiter is a token bucket per contact address.
type contactLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[relay.ID]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token for key, or says how long until one is available.
func (l *contactLimiter) allow(key relay.ID) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets buckets that have refilled, so memory follows active
// addresses only.
func (l *contactLimiter) sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
