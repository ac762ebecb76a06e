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
	"unicode"

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
	rep, err := c.sync(c.ctx, cl)
	if err != nil {
		return err
	}
	c.warn(cl)
	var sb strings.Builder
	for _, n := range rep.NewContacts {
		fmt.Fprintf(&sb, "new contact: %s (compare safety numbers: 'tainik safety-number %s')\n", n, n)
	}
	if rep.More {
		fmt.Fprintln(&sb, "(more contact requests are waiting: run 'tainik read' again)")
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
		err = c.out(map[string]any{"new_contacts": rep.NewContacts, "messages": list}, "")
	} else {
		err = c.out(nil, "%s", sb.String())
	}
	if err == nil && len(rep.Failed) > 0 {
		err = errors.New("not everything could be done (above)")
	}
	return err
}

// convName names the conversation a new message belongs to.
func convName(cl *client.Client, m client.Message) string {
	for _, cv := range cl.Conversations() {
		if m.Conv != "" && cv.ID != m.Conv {
			continue // the message id is the sender's choice; the conversation id is not
		}
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
		if _, err := c.sync(c.ctx, cl); err != nil {
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

// termSafe makes text another person wrote safe to print on a terminal:
// control characters (escape sequences could clear the screen, move the
// cursor or set the clipboard) and bidirectional or invisible formatting
// characters show as \x.. or \u.... escapes, and each line after the first
// is indented, so that a message cannot pass for several, or for another
// sender's.
func termSafe(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n':
			b.WriteString("\n    ")
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func human(m messageJSON) string {
	if m.Notice {
		return fmt.Sprintf("[%s] * %s %s", termSafe(m.Conversation), termSafe(m.Sender), termSafe(m.Text))
	}
	s := fmt.Sprintf("[%s] %s: %s", termSafe(m.Conversation), termSafe(m.Sender), termSafe(m.Text))
	if m.File != nil {
		s += fmt.Sprintf(" (%d bytes; 'tainik get-file %s %s')", m.File.Size, termSafe(m.Conversation), termSafe(m.File.Name))
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
	interval := fs.Duration("interval", 30*time.Second, "how often to fetch when the relay pushes nothing")
	_, cl, err := c.openWith(fs, args, 0, anyNumber, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(c.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	l := c.newListener(cl, *interval)
	defer l.stop()
	for {
		l.sync(ctx, "")
		cl.Release() // let other commands use the home between fetches
		if ev, _ := l.wait(ctx, nil); ev == evStop {
			return nil
		}
		if err := l.lock(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// listener waits, between fetches of a long-running command, for the
// relay's push, for another tainik command to change the profile (a new
// invitation or conversation to listen on), or for the fallback timer.
type listener struct {
	c        *cli
	cl       *client.Client
	wake     <-chan struct{}
	interval time.Duration
	timer    *time.Ticker
	check    *time.Ticker
	soon     <-chan time.Time // set when a fetch failed or left work
	fails    int              // fetches in a row that failed
	warned   string           // the last warning printed
}

func (c *cli) newListener(cl *client.Client, interval time.Duration) *listener {
	return &listener{c: c, cl: cl, interval: interval, timer: time.NewTicker(interval), check: time.NewTicker(time.Second)}
}

func (l *listener) stop() {
	l.timer.Stop()
	l.check.Stop()
}

const (
	// retryAfter is how soon a long-running command tries again after
	// a fetch failed (the relay is down) or the profile was busy.
	retryAfter = 5 * time.Second
	// fetchTimeout bounds one fetch, or one send of chat, so that a
	// relay that is down does not keep the profile locked.
	fetchTimeout = 30 * time.Second
)

// warn prints a warning unless it is the one printed last.
func (l *listener) warn(format string, args ...any) {
	if msg := fmt.Sprintf(format, args...); msg != l.warned {
		l.warned = msg
		fmt.Fprintf(os.Stderr, "tainik: %s\n", termSafe(msg))
	}
}

// sync fetches and prints, then subscribes to what is new. The home must
// be locked. A failed fetch is reported and tried again after retryAfter:
// a relay restart does not end the command.
func (l *listener) sync(ctx context.Context, only string) {
	if l.wake != nil {
		select { // this fetch covers any push so far
		case <-l.wake:
		default:
		}
	}
	l.soon = nil
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	more, err := l.c.syncAndPrint(fctx, l.cl, only)
	var partial *client.SyncError
	if err != nil {
		if ctx.Err() == nil {
			// Sooner at first, then less often: a conversation whose
			// relay is gone for good must not keep the profile busy.
			delay := min(retryAfter<<min(l.fails, 6), l.interval)
			l.fails++
			l.warn("fetch failed, trying again soon: %v", err)
			l.soon = time.After(delay)
		}
		if !errors.As(err, &partial) {
			return
		}
	} else {
		l.fails = 0
	}
	if more {
		l.soon = time.After(0)
	}
	wake, err := l.cl.Listen(fctx)
	l.wake = wake
	if err != nil && ctx.Err() == nil {
		// What could not be subscribed is fetched on the timer, and
		// Listen tries again after every fetch.
		l.warn("%v", err)
		return
	}
	if partial == nil {
		l.warned = ""
	}
}

// lock locks the profile again after a wait. While another process holds
// it, it says so once and tries again every retryAfter; it returns an
// error only if the profile cannot be read, and nil if ctx ended.
func (l *listener) lock(ctx context.Context) error {
	for {
		err := l.cl.ReloadContext(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var busy *client.BusyError
		if !errors.As(err, &busy) {
			return err
		}
		l.warn("%v; trying again every %v", err, retryAfter)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retryAfter):
		}
	}
}

// What ended a wait.
type event int

const (
	evStop  event = iota // ctx ended
	evFetch              // a push, the timer, or a change by another command
	evLine               // a line of input
	evEOF                // the input ended
)

// wait waits for the next event. lines, the input of chat, may be nil.
func (l *listener) wait(ctx context.Context, lines <-chan string) (event, string) {
	for {
		select {
		case <-ctx.Done():
			return evStop, ""
		case <-l.wake:
			return evFetch, ""
		case <-l.timer.C:
			return evFetch, ""
		case <-l.soon:
			return evFetch, ""
		case <-l.check.C:
			if l.cl.Changed() {
				return evFetch, ""
			}
		case line, ok := <-lines:
			if !ok {
				return evEOF, ""
			}
			return evLine, line
		}
	}
}

// syncAndPrint fetches and prints what arrived, only for conversation
// only if it is not empty.
//
// more says that the relay holds more than one fetch read (a flood of
// contact requests).
//
// A Sync that failed in part prints what it read, then returns its
// *client.SyncError.
func (c *cli) syncAndPrint(ctx context.Context, cl *client.Client, only string) (more bool, err error) {
	rep, err := cl.Sync(ctx)
	var partial *client.SyncError
	if err != nil && !errors.As(err, &partial) {
		return false, err
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
	return rep.More, err
}

func (c *cli) cmdChat(args []string) error {
	fs := c.flags("chat")
	interval := fs.Duration("interval", 30*time.Second, "how often to fetch when the relay pushes nothing")
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
	l := c.newListener(cl, *interval)
	defer l.stop()
	for {
		l.sync(ctx, name)
		cl.Release()
		ev, line := l.wait(ctx, lines)
		if ev == evStop {
			return nil
		}
		if err := l.lock(ctx); err != nil || ctx.Err() != nil {
			if ev == evLine {
				fmt.Fprintf(os.Stderr, "tainik: not sent: %q\n", line)
			}
			return err
		}
		switch ev {
		case evEOF:
			// End of input: one last fetch, then leave. What it could
			// not read was reported while chatting.
			_, err := c.syncAndPrint(ctx, cl, name)
			cl.Release()
			var partial *client.SyncError
			if errors.As(err, &partial) {
				return nil
			}
			return err
		case evLine:
			if err := c.sendLine(ctx, cl, name, line); err != nil {
				// Keep chatting: saying so lets the user send the
				// line again.
				fmt.Fprintf(os.Stderr, "tainik: not sent: %q: %v\n", line, err)
			}
		}
	}
}

// sendLine sends one line of chat, within fetchTimeout.
func (c *cli) sendLine(ctx context.Context, cl *client.Client, name, line string) error {
	cv, err := cl.FindConversation(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	_, err = cl.Send(ctx, cv, line)
	return err
}
