package server

import (
	"crypto/sha256"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// WakeKind says what a Wake names.
type WakeKind uint8

const (
	// WakeQueue names a queue by QueueWakeKey of its store key.
	WakeQueue WakeKind = 1
	// WakeLog names a log by LogWakeKey of its id.
	WakeLog WakeKind = 2
	// WakeAll asks a node to have every local subscription read the
	// store again: the notifier may have missed wake-ups (it was
	// disconnected, or fell behind).
	WakeAll WakeKind = 3
)

// Wake tells the nodes sharing a store that a queue or log has new data.
// It carries no payload and no identifier a client uses: a copy of every
// wake-up ever sent grants nothing.
type Wake struct {
	Kind WakeKind
	Key  relay.ID
}

// Notifier carries wake-ups between relay nodes that share one store, so
// that a message stored through one node is pushed at once to a
// subscriber connected to another. The store stays the source of truth: a
// lost wake-up delays a push until the next wake-up or resubscription,
// and loses nothing. The local notifier (the default, for one node) sends
// nothing; package natswake carries wake-ups over NATS.
//
// Implementations are safe for concurrent use.
type Notifier interface {
	// Publish sends w to the other nodes. The server calls it after the
	// write it announces has committed; it must not wait for the
	// other nodes.
	Publish(w Wake) error
	// Listen starts delivering the wake-ups other nodes publish to
	// wake, from one goroutine at a time, until the notifier is closed.
	// It is called once.
	Listen(wake func(Wake)) error
}

// localNotifier is the notifier of a relay that is the only node: the hub
// already wakes local subscribers.
type localNotifier struct{}

func (localNotifier) Publish(Wake) error      { return nil }
func (localNotifier) Listen(func(Wake)) error { return nil }

// QueueWakeKey is the key a Wake for a queue carries: a hash of the
// queue's store key, so that the notifier's operator sees a pseudonym of
// its own, which a copy of the database does not name.
func QueueWakeKey(key relay.ID) relay.ID { return wakeKey("tainik queue wake", key) }

// LogWakeKey is the key a Wake for the log id carries: a hash, so that
// the notifier's operator does not learn log ids.
func LogWakeKey(id relay.ID) relay.ID { return wakeKey("tainik log wake", id) }

// wakeKey is SHA-256 over label, a zero byte and id.
func wakeKey(label string, id relay.ID) relay.ID {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write(id[:])
	var k relay.ID
	h.Sum(k[:0])
	return k
}

// queueStored wakes the queue's subscribers here and on the other nodes;
// m is the message this node stored (nil for a duplicate), which the local
// subscriber may push without reading it back.
func (s *Server) queueStored(key relay.ID, m *store.Message) {
	s.hub.notifyQueue(key, m)
	if err := s.notifier.Publish(Wake{Kind: WakeQueue, Key: QueueWakeKey(key)}); err != nil {
		s.log.Warn("publishing a wake-up failed", "err", err)
	}
}

// logAppended wakes the log's subscribers here and on the other nodes.
func (s *Server) logAppended(id relay.ID) {
	s.hub.notifyLog(id)
	if err := s.notifier.Publish(Wake{Kind: WakeLog, Key: LogWakeKey(id)}); err != nil {
		s.log.Warn("publishing a wake-up failed", "err", err)
	}
}

// wake handles a wake-up from another node.
func (s *Server) wake(w Wake) {
	switch w.Kind {
	case WakeQueue:
		s.hub.mu.Lock()
		key, ok := s.hub.queueKeys[w.Key]
		if !ok {
			// A node from before wake keys were hashed sends the
			// store key itself.
			_, ok = s.hub.queues[w.Key]
			key = w.Key
		}
		s.hub.mu.Unlock()
		if ok {
			s.hub.notifyQueue(key, nil)
		}
	case WakeLog:
		s.hub.mu.Lock()
		id, ok := s.hub.logKeys[w.Key]
		s.hub.mu.Unlock()
		if ok {
			s.hub.notifyLog(id)
		}
	case WakeAll:
		s.hub.notifyAll()
	}
}

func (h *hub) notifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sub := range h.queues {
		sub.offer(nil) // the store may hold what no wake-up announced
		kick(sub.kick)
	}
	for _, subs := range h.logs {
		for sub := range subs {
			kick(sub.kick)
		}
	}
}
