// Commands about conversations: messages, groups, timers, watching and chat.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tainik/tainik/client"
)

func (c *cli) cmdSend(args []string) error {
	pos, cl, err := c.openWith(c.flags("send"), args, 2, anyNumber, "send takes a contact or group and the text: tainik send CONTACT TEXT")
	if err != nil {
		return err
	}
	defer cl.Close()
	cv, err := cl.FindConversation(pos[0])
	if err != nil {
		return err
	}
	m, err := cl.Send(c.ctx, cv, strings.Join(pos[1:], " "))
	if err != nil {
		return err
	}
	return c.out(m, "sent\n")
}

type messageJSON struct {
	Conversation string `json:"conversation"`
	client.Message
}

func (c *cli) cmdRead(args []string) error {
	pos, cl, err := c.openWith(c.flags("read"), args, 0, anyNumber, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	rep, err := cl.Sync(c.ctx)
	if err != nil {
		return err
	}
	c.warn(cl)
	var sb strings.Builder
	for _, n := range rep.NewContacts {
		fmt.Fprintf(&sb, "new contact: %s (compare safety numbers: 'tainik safety-number %s')\n", n, n)
	}
	list := []messageJSON{}
	if len(pos) > 0 {
		cv, err := cl.FindConversation(pos[0])
		if err != nil {
			return err
		}
		for _, m := range cl.History(cv) {
			list = append(list, messageJSON{pos[0], m})
		}
		if cv.Removed {
			fmt.Fprintf(&sb, "(you are no longer a member of %s)\n", pos[0])
		}
	} else {
		for _, m := range rep.New {
			list = append(list, messageJSON{convName(cl, m), m})
		}
	}
	for _, m := range list {
		fmt.Fprintln(&sb, human(m))
	}
	if c.json {
		return c.out(map[string]any{"new_contacts": rep.NewContacts, "messages": list}, "")
	}
	return c.out(nil, "%s", sb.String())
}

// convName names the conversation a new message belongs to.
func convName(cl *client.Client, m client.Message) string {
	for _, cv := range cl.Conversations() {
		for _, x := range cv.Messages {
			if x.ID == m.ID {
				if cv.Direct {
					for _, ct := range cl.Contacts() {
						if ct.Conversation == cv.ID {
							return ct.Name
						}
					}
				}
				return cv.Name
			}
		}
	}
	return "?"
}

func (c *cli) cmdGroup(args []string) error {
	pos, err := parse(c.flags("group"), args)
	if err != nil {
		return err
	}
	want := map[string]int{"create": 1, "add": 2, "remove": 2, "leave": 1, "rename": 2, "members": 1}
	if len(pos) == 0 || want[pos[0]] == 0 {
		return errors.New("group takes a subcommand: create, add, remove, leave, rename or members (see 'tainik help')")
	}
	sub := pos[0]
	if len(pos)-1 != want[sub] {
		return fmt.Errorf("group %s takes %d argument(s) (see 'tainik help')", sub, want[sub])
	}
	cl, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	if sub == "create" {
		if _, err := cl.CreateGroup(c.ctx, pos[1]); err != nil {
			return err
		}
		return c.out(map[string]string{"group": pos[1]}, "created group %s; add contacts with 'tainik group add %s CONTACT'\n", pos[1], pos[1])
	}
	cv, err := cl.FindConversation(pos[1])
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		err = cl.AddMember(c.ctx, cv, pos[2])
	case "remove":
		err = cl.RemoveMember(c.ctx, cv, pos[2])
	case "leave":
		err = cl.Leave(c.ctx, cv)
	case "rename":
		err = cl.Rename(c.ctx, cv, pos[2])
	case "members":
		if _, err := cl.Sync(c.ctx); err != nil {
			return err
		}
		ms, err := cl.Members(cv)
		if err != nil {
			return err
		}
		return c.out(ms, "%s\n", strings.Join(ms, "\n"))
	}
	if err != nil {
		return err
	}
	return c.out(map[string]string{"group": cv.Name, "done": sub}, "done\n")
}

func human(m messageJSON) string {
	s := fmt.Sprintf("[%s] %s: %s", m.Conversation, m.Sender, m.Text)
	if m.File != nil {
		s += fmt.Sprintf(" (%d bytes; 'tainik get-file %s %s')", m.File.Size, m.Conversation, m.File.Name)
	}
	if !m.Expires.IsZero() {
		s += " (disappears " + m.Expires.Local().Format(time.DateTime) + ")"
	}
	return s
}

func (c *cli) cmdDisappear(args []string) error {
	pos, err := positional(c.flags("disappear"), args, 2, 2, "disappear takes a conversation and a duration: tainik disappear CONTACT|GROUP 1h (or off)")
	if err != nil {
		return err
	}
	var d time.Duration
	if pos[1] != "off" && pos[1] != "0" {
		if d, err = time.ParseDuration(pos[1]); err != nil || d <= 0 {
			return fmt.Errorf("%q is not a duration: use e.g. 30s, 10m, 24h, or off", pos[1])
		}
	}
	cl, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	cv, err := cl.FindConversation(pos[0])
	if err != nil {
		return err
	}
	if err := cl.SetDisappear(c.ctx, cv, d); err != nil {
		return err
	}
	if d == 0 {
		return c.out(map[string]any{"conversation": pos[0], "timer_seconds": 0}, "messages in %s no longer disappear\n", pos[0])
	}
	return c.out(map[string]any{"conversation": pos[0], "timer_seconds": d.Seconds()}, "new messages in %s disappear after %v\n", pos[0], d)
}

func (c *cli) cmdWatch(args []string) error {
	fs := c.flags("watch")
	interval := fs.Duration("interval", time.Second, "how often to fetch")
	_, cl, err := c.openWith(fs, args, 0, anyNumber, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(*interval)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			if err := cl.Reload(); err != nil {
				return err
			}
		}
		err := c.syncAndPrint(ctx, cl, "")
		cl.Release() // let other commands use the home between fetches
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// syncAndPrint fetches and prints what arrived, only for conversation
// only if it is not empty.
func (c *cli) syncAndPrint(ctx context.Context, cl *client.Client, only string) error {
	rep, err := cl.Sync(ctx)
	if err != nil {
		return err
	}
	for _, n := range rep.NewContacts {
		if !c.json {
			fmt.Fprintf(c.stdout, "new contact: %s\n", n)
		}
	}
	for _, m := range rep.New {
		mj := messageJSON{convName(cl, m), m}
		if only != "" && mj.Conversation != only {
			continue
		}
		if c.json {
			json.NewEncoder(c.stdout).Encode(mj)
		} else {
			fmt.Fprintln(c.stdout, human(mj))
		}
	}
	return nil
}

func (c *cli) cmdChat(args []string) error {
	fs := c.flags("chat")
	interval := fs.Duration("interval", time.Second, "how often to fetch")
	pos, cl, err := c.openWith(fs, args, 1, 1, "chat takes a contact or group: tainik chat CONTACT|GROUP")
	if err != nil {
		return err
	}
	defer cl.Close()
	name := pos[0]
	if _, err := cl.FindConversation(name); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := c.stdin.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	if !c.json {
		fmt.Fprintf(os.Stderr, "chatting with %s: type a line and press Enter; Ctrl-D to leave\n", name)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	locked := true
	for {
		if locked {
			err := c.syncAndPrint(ctx, cl, name)
			cl.Release()
			locked = false
			if err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case line, ok := <-lines:
			if err := cl.Reload(); err != nil {
				return err
			}
			locked = true
			if !ok {
				// End of input: one last fetch, then leave.
				err := c.syncAndPrint(ctx, cl, name)
				cl.Release()
				return err
			}
			cv, err := cl.FindConversation(name)
			if err != nil {
				return err
			}
			if _, err := cl.Send(ctx, cv, line); err != nil {
				cl.Release()
				return err
			}
			continue
		}
		if err := cl.Reload(); err != nil {
			return err
		}
		locked = true
	}
}
