package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tainik/tainik/relay"
	relayclient "github.com/tainik/tainik/relay/client"
)

// A long-running front end (watch, chat) asks the relays to push what
// arrives instead of fetching on a timer: Listen subscribes to every
// queue and log Sync reads, and its channel says when to Sync again.
// The pushes themselves are only a signal; Sync reads and acknowledges
// as it always does, so a lost push costs latency, never a message.

// renewEvery is how often Listen subscribes to its queues again even if
// it holds their subscriptions, and forgets which relays were full.
const renewEvery = 5 * time.Minute

// listener is what Listen keeps between calls. It is used only with the
// home locked (Listen, Reload, Close); the drain goroutines touch only
// wake and stop.
type listener struct {
	wake chan struct{} // capacity 1: pushes coalesce
	stop chan struct{} // closed by Client.Close
	// full holds relays that refused a subscription for the
	// per-connection limit: what is left there is fetched on the timer.
	full    map[string]bool
	drained map[*relayclient.Client]bool
	// renew makes the next Listen subscribe to every queue again: set by
	// Reload when another process saved the profile, since that may be
	// another front end, which took the queue subscriptions over (a
	// relay pushes a queue's messages to one connection only, and does
	// not tell the one it replaced).
	renew   bool
	renewAt time.Time
}

// Listen subscribes to new contact requests, replies and conversation
// entries on every relay this device reads from, and returns a channel
// that receives a value whenever a relay pushed something: the caller
// then runs Sync. Call Listen again after each Sync, with the home still
// locked, so that queues and conversations that appeared since are
// covered too; subscriptions already in place are kept, and the relay
// client renews them after a reconnect. A left conversation's
// subscription is ended.
//
// A subscription the relay refuses is reported in the error and tried
// again at the next call (after a refusal for the per-connection limit,
// at the first call five minutes later); the channel still works for the
// others. The caller should keep fetching on a timer as well: a second
// front end on the same profile takes the queue subscriptions over until
// this one notices its save and renews them.
func (c *Client) Listen(ctx context.Context) (<-chan struct{}, error) {
	l := c.listen
	if l == nil {
		l = &listener{
			wake:    make(chan struct{}, 1),
			stop:    make(chan struct{}),
			full:    map[string]bool{},
			drained: map[*relayclient.Client]bool{},
		}
		c.listen = l
	}
	renew := l.renew || !c.now().Before(l.renewAt)
	if renew {
		clear(l.full)
	}
	type sub struct {
		relay string
		held  func(*relayclient.Client) bool
		do    func(context.Context, *relayclient.Client) error
	}
	var subs []sub
	queue := func(qs queueState) {
		q := qs.handle()
		subs = append(subs, sub{qs.Relay,
			func(rc *relayclient.Client) bool { return !renew && rc.Subscribed(q.RecipientID) },
			func(ctx context.Context, rc *relayclient.Client) error { return rc.Subscribe(ctx, q) }})
	}
	for _, inv := range c.st.Invites {
		queue(inv.Queue)
	}
	for _, p := range c.st.Pending {
		queue(p.Queue)
	}
	var errs []error
	for _, cv := range c.st.Convs {
		lg, from := cv.log(), cv.Next
		if cv.Removed {
			// MLS removal does not take the log's token away: the
			// relay would push every later entry of the group.
			if rc := c.conns[cv.Relay]; rc != nil && rc.SubscribedLog(lg.ID) {
				if err := rc.UnsubscribeLog(ctx, lg.ID); err != nil {
					errs = append(errs, fmt.Errorf("client: unsubscribe on relay %s: %w", cv.Relay, err))
				}
			}
			continue
		}
		subs = append(subs, sub{cv.Relay,
			func(rc *relayclient.Client) bool { return rc.SubscribedLog(lg.ID) },
			func(ctx context.Context, rc *relayclient.Client) error { return rc.SubscribeLog(ctx, lg, from) }})
	}
	down := map[string]bool{}
	for _, s := range subs {
		if l.full[s.relay] || down[s.relay] {
			continue
		}
		rc, err := c.conn(ctx, s.relay)
		if err != nil {
			down[s.relay] = true // dial once per call
			errs = append(errs, err)
			continue
		}
		l.drain(rc)
		if s.held(rc) {
			continue
		}
		err = s.do(ctx, rc)
		var re *relay.Error
		switch {
		case err == nil:
		case errors.As(err, &re) && re.Code == relay.CodeTooManySubscriptions:
			l.full[s.relay] = true
			errs = append(errs, fmt.Errorf("client: relay %s takes no more subscriptions from one connection: the rest of its conversations are fetched on the timer", s.relay))
		case errors.As(err, &re) && re.Code == relay.CodeNotFound:
			// Gone from the relay (an expired invitation, a deleted
			// log): Sync finds out and drops it.
		default:
			errs = append(errs, fmt.Errorf("client: subscribe on relay %s: %w", s.relay, err))
		}
	}
	if renew && len(errs) == 0 {
		l.renew, l.renewAt = false, c.now().Add(renewEvery)
	}
	return l.wake, errors.Join(errs...)
}

// drain starts, once per relay connection, the goroutine that turns its
// pushes and lost subscriptions into wake-ups.
func (l *listener) drain(rc *relayclient.Client) {
	if l.drained[rc] {
		return
	}
	l.drained[rc] = true
	go func() {
		for {
			select {
			case <-l.stop:
				return
			case <-rc.Pushes():
			case <-rc.SubscriptionErrors():
				// Listen subscribes again (or Sync finds the
				// queue or log gone).
			}
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}()
}
