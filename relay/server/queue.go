package server

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

func newID() relay.ID {
	var id relay.ID
	rand.Read(id[:])
	return id
}

var errBadSignature = relay.Errorf(relay.CodeBadSignature, "bad signature")

func (c *conn) queueCreate(ctx context.Context, m *relay.QueueCreate) (relay.Message, error) {
	if !relay.Verify(m, c.nonce[:], m.RecipientKey[:]) {
		return nil, errBadSignature
	}
	// The two identifiers are drawn independently, so neither reveals the
	// other.
	q := store.Queue{RecipientID: newID(), SenderID: newID(), RecipientKey: m.RecipientKey, Contact: m.Contact}
	if err := c.s.store.CreateQueue(ctx, q); err != nil {
		return nil, err
	}
	return &relay.QueueCreated{RecipientID: q.RecipientID, SenderID: q.SenderID}, nil
}

// recipientQueue looks the queue up and checks the recipient's signature.
// An unknown queue and a bad signature give different codes: the
// recipient id is a 32-byte secret, so telling them apart reveals nothing
// to someone who does not hold it.
func (c *conn) recipientQueue(ctx context.Context, rid relay.ID, m relay.Signed) (store.Queue, error) {
	return c.recipientQueueCached(ctx, rid, m, false)
}

// recipientQueueCached is recipientQueue that, with cached set, takes a
// queue this connection subscribed to from memory: its key and recipient
// key never change, so acknowledgements and receives skip the lookup
// (not the signature). A queue deleted meanwhile fails in the store.
func (c *conn) recipientQueueCached(ctx context.Context, rid relay.ID, m relay.Signed, cached bool) (store.Queue, error) {
	var q store.Queue
	ok := false
	if cached {
		c.mu.Lock()
		q, ok = c.recipients[rid]
		c.mu.Unlock()
	}
	if !ok {
		var err error
		q, err = c.s.store.QueueByRecipient(ctx, rid)
		if err != nil {
			return store.Queue{}, err
		}
	}
	if !relay.Verify(m, c.nonce[:], q.RecipientKey[:]) {
		return store.Queue{}, errBadSignature
	}
	return q, nil
}

func (c *conn) queueLock(ctx context.Context, m *relay.QueueLock) (relay.Message, error) {
	q, err := c.recipientQueue(ctx, m.RecipientID, m)
	if err != nil {
		return nil, err
	}
	if q.Contact {
		return nil, relay.Errorf(relay.CodeBadRequest, "a contact address cannot be locked")
	}
	if err := c.s.store.LockQueue(ctx, q.Key, m.SenderKey); err != nil {
		return nil, err
	}
	return &relay.OK{}, nil
}

func (c *conn) queueSend(ctx context.Context, m *relay.QueueSend) (relay.Message, error) {
	if len(m.Payload) > relay.MaxPayload {
		return nil, relay.Errorf(relay.CodeTooLarge, "payload larger than %d bytes", relay.MaxPayload)
	}
	if !relay.IsPadded(m.Payload) {
		return nil, relay.Errorf(relay.CodeBadPadding, "payload must be padded to 1, 4, 16 or 64 KiB")
	}
	q, err := c.s.store.QueueBySender(ctx, m.SenderID)
	if err != nil {
		return nil, err
	}
	if q.SenderKey != nil && !relay.Verify(m, c.nonce[:], q.SenderKey) {
		return nil, relay.Errorf(relay.CodeQueueLocked, "queue is locked: sign with the sender key")
	}
	msg := store.Message{ID: m.MsgID, Payload: m.Payload, Expires: time.Now().Add(c.s.cfg.MessageTTL)}
	if q.Contact {
		if ok, wait := c.s.limiter.allow(q.Key); !ok {
			// Even a retry of a message already stored waits: looking
			// it up would let a flood of sends to a published address
			// cost the store's writers. After the wait the retry is
			// answered OK and stored once.
			return nil, &relay.Error{Code: relay.CodeRateLimited, Detail: uint64(wait.Milliseconds()) + 1, Message: "too many messages to this contact address"}
		}
	}
	seq, dup, err := c.s.store.AddMessage(ctx, q.Key, msg, c.s.cfg.MaxQueueMessages)
	if err != nil {
		// A networked store may have committed a write whose answer
		// was lost (the connection's context ended): wake the
		// subscriber to read the store, rather than leave such a
		// message waiting for the next send.
		if !errors.Is(err, store.ErrQuota) && !errors.Is(err, store.ErrNotFound) {
			c.s.queueStored(q.Key, nil)
		}
		return nil, err
	}
	// Wake on a duplicate too: the first attempt may have been stored by
	// a node that died before announcing it.
	stored := &msg
	if dup {
		stored = nil
	} else {
		c.s.metrics.queueMessages.Add(1)
		msg.Seq = seq
	}
	c.s.queueStored(q.Key, stored)
	return &relay.OK{}, nil
}

func (c *conn) queueSubscribe(ctx context.Context, m *relay.QueueSubscribe) (relay.Message, error) {
	q, err := c.recipientQueue(ctx, m.RecipientID, m)
	if err != nil {
		return nil, err
	}
	if err := c.s.hub.subscribeQueue(c, q.Key, m.RecipientID, c.s.cfg.MaxSubscriptions); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.recipients == nil {
		c.recipients = make(map[relay.ID]store.Queue)
	}
	c.recipients[m.RecipientID] = store.Queue{Key: q.Key, RecipientKey: q.RecipientKey, Contact: q.Contact}
	c.mu.Unlock()
	return &relay.OK{}, nil
}

func (c *conn) queueReceive(ctx context.Context, m *relay.QueueReceive) (relay.Message, error) {
	q, err := c.recipientQueue(ctx, m.RecipientID, m)
	if err != nil {
		return nil, err
	}
	msgs, err := c.s.store.Messages(ctx, q.Key, 0, relay.MaxReceive, relay.MaxResponseSize-4096)
	if err != nil {
		return nil, err
	}
	resp := &relay.Messages{}
	for _, sm := range msgs {
		resp.Messages = append(resp.Messages, relay.QueueMessage{MsgID: sm.ID, Payload: sm.Payload})
	}
	return resp, nil
}

func (c *conn) queueAck(ctx context.Context, m *relay.QueueAck) (relay.Message, error) {
	q, err := c.recipientQueueCached(ctx, m.RecipientID, m, true)
	if err != nil {
		return nil, err
	}
	if _, err := c.s.store.AckMessages(ctx, q.Key, m.MsgIDs, time.Now().Add(c.s.cfg.DedupWindow)); err != nil {
		return nil, err
	}
	// Before the answer: see hub.acked.
	c.s.hub.acked(q.Key, m.MsgIDs)
	return &relay.OK{}, nil
}

func (c *conn) queueDelete(ctx context.Context, m *relay.QueueDelete) (relay.Message, error) {
	q, err := c.recipientQueue(ctx, m.RecipientID, m)
	if err != nil {
		return nil, err
	}
	c.s.hub.unsubscribeQueue(q.Key)
	c.mu.Lock()
	delete(c.recipients, m.RecipientID)
	c.mu.Unlock()
	if err := c.s.store.DeleteQueue(ctx, q.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return &relay.OK{}, nil
}
