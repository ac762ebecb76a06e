package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

func (c *conn) logCreate(ctx context.Context, m *relay.LogCreate) (relay.Message, error) {
	l := store.Log{ID: newID(), GroupID: m.GroupID, Epoch: m.Epoch, TokenHash: m.TokenHash, NextSeq: 1}
	if err := c.s.store.CreateLog(ctx, l); err != nil {
		return nil, err
	}
	return &relay.LogCreated{LogID: l.ID}, nil
}

// authLog checks a member's capability token against the stored hash.
func (c *conn) authLog(ctx context.Context, id, token relay.ID) (store.Log, error) {
	l, err := c.s.store.Log(ctx, id)
	if err != nil {
		return store.Log{}, err
	}
	h := sha256.Sum256(token[:])
	if subtle.ConstantTimeCompare(h[:], l.TokenHash[:]) != 1 {
		return store.Log{}, relay.Errorf(relay.CodeAuth, "bad log capability")
	}
	return l, nil
}

// logAppend orders a handshake or application message into the group's
// log. The relay reads only the MLS header: the group id must be the log's,
// and the epoch must fit (see store.CheckEpoch): at most one commit per
// epoch, the first to arrive wins. See RFC 9750, Section 5.2.
func (c *conn) logAppend(ctx context.Context, m *relay.LogAppend) (relay.Message, error) {
	if len(m.Message) > relay.MaxPayload {
		return nil, relay.Errorf(relay.CodeTooLarge, "message larger than %d bytes", relay.MaxPayload)
	}
	l, err := c.authLog(ctx, m.LogID, m.Token)
	if err != nil {
		return nil, err
	}
	h, err := relay.ParseMLSHeader(m.Message)
	if err != nil {
		return nil, relay.Errorf(relay.CodeBadMessage, "not an MLS PublicMessage or PrivateMessage")
	}
	if !bytes.Equal(h.GroupID, l.GroupID) {
		return nil, relay.Errorf(relay.CodeBadMessage, "message is for another group")
	}
	// The relay takes a TTL on any entry; clients set one only on
	// application messages, since members catching up need the handshake.
	life := c.s.cfg.LogRetention
	if ttl := time.Duration(m.TTL) * time.Second; ttl > 0 && ttl < life {
		life = ttl
	}
	e := store.Entry{Epoch: h.Epoch, Commit: h.ContentType == relay.ContentTypeCommit, Message: m.Message, Expires: time.Now().Add(life)}
	seq, epoch, err := c.s.store.AppendLog(ctx, m.LogID, e)
	if err != nil {
		// As for queue sends: a networked store may have committed
		// an append whose answer was lost; wake the subscribers.
		var ee *store.EpochError
		if !errors.As(err, &ee) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrQuota) {
			c.s.logAppended(m.LogID)
		}
		return nil, err
	}
	c.s.metrics.logEntries.Add(1)
	c.s.logAppended(m.LogID)
	return &relay.LogAppended{Seq: seq, Epoch: epoch}, nil
}

func (c *conn) logRead(ctx context.Context, m *relay.LogRead) (relay.Message, error) {
	l, err := c.authLog(ctx, m.LogID, m.Token)
	if err != nil {
		return nil, err
	}
	entries, more, err := c.s.store.LogEntries(ctx, m.LogID, m.From, relay.MaxLogRead, relay.MaxResponseSize-4096)
	if err != nil {
		return nil, err
	}
	// The epoch is read again after the entries: if a commit came in
	// between, the answer carries the newer epoch and says more entries
	// may follow, so the reader never takes an old epoch for the one
	// its entries reach.
	after, err := c.s.store.Log(ctx, m.LogID)
	if err != nil {
		return nil, err
	}
	resp := &relay.LogEntries{Epoch: after.Epoch, More: more || after.Epoch != l.Epoch}
	for _, e := range entries {
		resp.Entries = append(resp.Entries, relay.LogEntry{Seq: e.Seq, Message: e.Message})
	}
	return resp, nil
}

func (c *conn) logSubscribe(ctx context.Context, m *relay.LogSubscribe) (relay.Message, error) {
	if _, err := c.authLog(ctx, m.LogID, m.Token); err != nil {
		return nil, err
	}
	if err := c.s.hub.subscribeLog(c, m.LogID, m.From, c.s.cfg.MaxSubscriptions); err != nil {
		return nil, err
	}
	return &relay.OK{}, nil
}
