package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/tainik/tainik/relay"
	relayclient "github.com/tainik/tainik/relay/client"
)

// A long-running front end (watch, chat) asks the relays to push what
// arrives instead of fetching on a timer: Listen subscribes to every
// queue and log Sync reads, and its channel says when to Sync again.
// The pushes themselves are only a signal; Sync reads and acknowledges
// as it always does, so a lost push costs latency, never a message.

// listener is what Listen keeps between calls. It is used only by
// Listen, which runs with the home locked, one call at a time; the drain
// goroutines touch only wake and stop.
type listener struct {
	wake chan struct{} // capacity 1: pushes coalesce
	stop chan struct{} // closed by Client.Close
	// full holds relays that refused a subscription for the
	// per-connection limit: what is left there is fetched on the timer.
	full    map[string]bool
	drained map[*relayclient.Client]bool
}

// Listen subscribes to new contact requests, replies and conversation
// entries on every relay this device reads from, and returns a channel
// that receives a value whenever a relay pushed something: the caller
// then runs Sync. Call Listen again after each Sync, with the home still
// locked, so that queues and conversations that appeared since are
// covered too; subscriptions already in place are kept, and the relay
// client renews them after a reconnect.
//
// A subscription the relay refuses is reported in the error and tried
// again at the next call; the channel still works for the others. The
// caller should keep fetching on a timer as well, because a relay pushes
// a queue's messages to one connection only: a second front end on the
// same profile takes the contact-request subscriptions over.
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
	type sub struct {
		relay string
		held  func(*relayclient.Client) bool
		do    func(context.Context, *relayclient.Client) error
	}
	var subs []sub
	queue := func(qs queueState) {
		q := qs.handle()
		subs = append(subs, sub{qs.Relay,
			func(rc *relayclient.Client) bool { return rc.Subscribed(q.RecipientID) },
			func(ctx context.Context, rc *relayclient.Client) error { return rc.Subscribe(ctx, q) }})
	}
	for _, inv := range c.st.Invites {
		queue(inv.Queue)
	}
	for _, p := range c.st.Pending {
		queue(p.Queue)
	}
	for _, cv := range c.st.Convs {
		if cv.Removed {
			// Its subscription, if any, pushes at most a few more
			// entries, which Sync skips.
			continue
		}
		lg, from := cv.log(), cv.Next
		subs = append(subs, sub{cv.Relay,
			func(rc *relayclient.Client) bool { return rc.SubscribedLog(lg.ID) },
			func(ctx context.Context, rc *relayclient.Client) error { return rc.SubscribeLog(ctx, lg, from) }})
	}
	var errs []error
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
