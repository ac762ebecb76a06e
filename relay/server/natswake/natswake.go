// Package natswake carries a relay's wake-ups between nodes over core NATS
// publish/subscribe: after a write commits, the node that took it
// publishes a 33-byte notice (kind and a hashed key) on one subject, and
// every other node wakes the local subscribers it names, which then read
// the store.
//
// Core NATS is enough because the store is the source of truth: a wake-up
// lost while a node is disconnected from NATS or too slow to keep up is
// covered by waking every local subscriber when the connection returns or
// a slow-consumer error is reported. See docs/architecture.md.
package natswake

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server"
)

// Notifier is a server.Notifier over NATS.
type Notifier struct {
	nc      *nats.Conn
	subject string
	log     *slog.Logger
	wake    atomic.Pointer[func(server.Wake)]
	sub     *nats.Subscription
	stop    chan struct{} // closed by Close; ends watchDrops
	stopped sync.Once
}

// Pending limits of the wake-up subscription, and how often Listen
// checks it for dropped notices; variables for the tests.
var (
	pendingMsgs, pendingBytes = 1 << 20, 64 << 20
	dropCheck                 = time.Second
)

var _ server.Notifier = (*Notifier)(nil)

// Dial connects to the NATS server at url. Nodes that share a store must
// use the same prefix, and nodes of different relays different ones. The
// connection reconnects forever.
func Dial(url, prefix string, log *slog.Logger) (*Notifier, error) {
	if prefix == "" || strings.ContainsAny(prefix, "*> \t\r\n") || strings.HasPrefix(prefix, ".") || strings.HasSuffix(prefix, ".") || strings.Contains(prefix, "..") {
		return nil, fmt.Errorf("natswake: subject prefix %q must be plain NATS subject tokens (no wildcards, spaces or empty tokens)", prefix)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{subject: prefix + ".wake", log: log, stop: make(chan struct{})}
	nc, err := nats.Connect(url,
		nats.Name("tainikd"),
		// A node never needs its own wake-ups: it woke its local
		// subscribers before publishing.
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		// Without it nats.go gives up for good after the same
		// authorisation error twice, and the node would never hear
		// from the others again (credentials rotated mid-reconnect).
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(250*time.Millisecond),
		nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil when closed on purpose
				log.Warn("NATS disconnected; wake-ups from other nodes are paused", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected; waking every local subscriber")
			// Make sure the server has our subscription again before
			// the store is re-read, or a wake-up sent in between
			// would be lost.
			if err := nc.FlushTimeout(5 * time.Second); err != nil {
				log.Warn("NATS flush after reconnecting failed", "err", err)
			}
			n.wakeAll()
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Error("NATS connection closed for good; this node no longer hears other nodes' wake-ups: restart it", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error; waking every local subscriber", "err", err)
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.wakeAll()
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("natswake: connecting to %s: %w", url, err)
	}
	n.nc = nc
	return n, nil
}

func (n *Notifier) wakeAll() {
	if f := n.wake.Load(); f != nil {
		(*f)(server.Wake{Kind: server.WakeAll})
	}
}

// Publish sends w and returns once the NATS server has it (a flush, one
// round trip), so that a send the relay acknowledges has its wake-up on
// the server: if the NATS server then fails, every node reconnects and
// wakes all its subscribers. While disconnected it returns at once:
// nats.go buffers the notice and sends it on reconnect, and the
// disconnection was logged once rather than for every send.
func (n *Notifier) Publish(w server.Wake) error {
	var msg [1 + len(relay.ID{})]byte
	msg[0] = byte(w.Kind)
	copy(msg[1:], w.Key[:])
	if err := n.nc.Publish(n.subject, msg[:]); err != nil {
		return fmt.Errorf("natswake: %w", err)
	}
	if !n.nc.IsConnected() {
		return nil
	}
	if err := n.nc.FlushTimeout(time.Second); err != nil {
		return fmt.Errorf("natswake: flushing a wake-up: %w", err)
	}
	return nil
}

// Listen subscribes to the other nodes' wake-ups. nats.go delivers a
// subscription's messages from one goroutine.
func (n *Notifier) Listen(wake func(server.Wake)) error {
	n.wake.Store(&wake)
	sub, err := n.nc.Subscribe(n.subject, func(m *nats.Msg) {
		if len(m.Data) != 1+len(relay.ID{}) {
			n.log.Warn("ignoring a malformed wake-up", "len", len(m.Data))
			return
		}
		w := server.Wake{Kind: server.WakeKind(m.Data[0])}
		copy(w.Key[:], m.Data[1:])
		wake(w)
	})
	if err != nil {
		return fmt.Errorf("natswake: subscribing: %w", err)
	}
	// Wake-ups are tiny and cheap to act on; let a burst queue up
	// rather than be dropped as a slow consumer.
	sub.SetPendingLimits(pendingMsgs, pendingBytes)
	n.sub = sub
	go n.watchDrops()
	// Make sure the server has the subscription before the relay
	// starts serving, so no wake-up published after that is missed.
	if err := n.nc.Flush(); err != nil {
		return fmt.Errorf("natswake: subscribing: %w", err)
	}
	return nil
}

// watchDrops wakes every local subscriber when notices were dropped since
// it last looked. nats.go reports a slow consumer once per episode (the
// error handler wakes everyone then), but it may drop more notices
// before the episode ends; this covers those.
func (n *Notifier) watchDrops() {
	t := time.NewTicker(dropCheck)
	defer t.Stop()
	var seen int
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		d, err := n.sub.Dropped()
		if err != nil || d == seen {
			continue
		}
		seen = d
		n.log.Warn("NATS wake-ups were dropped; waking every local subscriber", "dropped", d)
		n.wakeAll()
	}
}

// Close sends pending wake-ups and closes the connection.
func (n *Notifier) Close() error {
	n.stopped.Do(func() { close(n.stop) })
	err := n.nc.FlushTimeout(2 * time.Second)
	n.nc.Close()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natswake: flushing on close: %w", err)
	}
	return nil
}
