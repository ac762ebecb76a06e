package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// SetDisappear sets a conversation's disappearing-message timer for every
// member: messages sent afterwards vanish from every member's store once
// the timer has run from their sending. Zero turns it off.
func (c *Client) SetDisappear(ctx context.Context, cv *Conversation, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("client: negative timer %v", d)
	}
	if cv.Removed {
		return fmt.Errorf("client: you are no longer a member of %s", cv.Name)
	}
	if err := c.syncConv(ctx, cv, new(SyncReport)); err != nil {
		return err
	}
	g, err := c.group(cv)
	if err != nil {
		return err
	}
	pl := c.newPayload("disappear")
	pl.Timer = d
	seq, err := c.sendPayload(ctx, cv, g, pl)
	if err != nil {
		return err
	}
	if d != cv.Disappear {
		text := "turned disappearing messages off"
		if d > 0 {
			text = "set new messages to disappear after " + d.String()
		}
		cv.Messages = append(cv.Messages, Message{Seq: seq, ID: pl.ID, From: hex.EncodeToString(c.Identity()), Sender: "me", Text: text, Sent: pl.Sent, Mine: true, Notice: true, Conv: cv.ID})
	}
	cv.Disappear = d
	return c.save()
}

// expire deletes expired messages from every conversation and reports
// whether it deleted any. Open and Sync call it, and save.
func (c *Client) expire() bool {
	now := c.now()
	changed := false
	for _, cv := range c.st.Convs {
		keep := cv.Messages[:0]
		for _, m := range cv.Messages {
			if !m.Expires.IsZero() && !now.Before(m.Expires) {
				changed = true
				continue
			}
			keep = append(keep, m)
		}
		clear(cv.Messages[len(keep):])
		cv.Messages = keep
	}
	return changed
}
