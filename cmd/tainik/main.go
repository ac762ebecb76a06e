// Command tainik is the Tainik command-line client.
//
//	tainik [--home DIR] [--json] COMMAND [ARGS]
//
// The passphrase of the local store is read from TAINIK_PASSPHRASE or,
// if that is unset, from the first line of standard input.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tainik/tainik/client"
)

const usage = `usage: tainik [--home DIR] [--json] COMMAND [ARGS]

commands:
  init --relay ADDR        create a profile (identity and device keys, encrypted store)
  whoami                   show your identity key and relay
  invite [--name NAME] [--ttl 24h] [--qr=false] [--reusable]
                           make a one-time invitation link (and QR code) for a new contact;
                           --reusable makes a long-lived contact address (a tip line)
  connect [--name NAME] LINK
                           answer an invitation link
  contacts                 list contacts
  safety-number CONTACT    show the safety number (digits and QR code) shared with a contact
  verify CONTACT [NUMBER]  mark a contact verified (checking NUMBER if given)
  send CONTACT|GROUP TEXT  send a message
  read [CONTACT|GROUP]     fetch from relays; print new messages, or a conversation's history
  group create NAME        create a group
  group add GROUP CONTACT  add a contact to a group
  group remove GROUP CONTACT
                           remove a member; they read nothing sent afterwards
  group leave GROUP        leave a group
  group rename GROUP NAME  rename a group for every member
  group members GROUP      list a group's members
  disappear CONV DURATION  set the disappearing-message timer (e.g. 1h, 30s, off)
  send-file CONV PATH      send a file (encrypted, in parts, with progress)
  get-file CONV NAME [--out PATH]
                           fetch a received file, checking its integrity
  watch [--interval 1s]    keep fetching and print messages as they arrive
  chat CONTACT|GROUP       interactive chat: lines from standard input are sent
  backup FILE              write an encrypted copy of the store
  restore FILE             restore a backup into an empty --home

The store passphrase comes from TAINIK_PASSPHRASE, or else the first line of standard input.
`

type cli struct {
	home   string
	json   bool
	stdin  *bufio.Reader
	stdout io.Writer
	ctx    context.Context
}

func main() {
	c := &cli{stdin: bufio.NewReader(os.Stdin), stdout: os.Stdout, ctx: context.Background()}
	if err := c.run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tainik:", strings.TrimPrefix(err.Error(), "client: "))
		os.Exit(1)
	}
}

func defaultHome() string {
	if h := os.Getenv("TAINIK_HOME"); h != "" {
		return h
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".tainik")
	}
	return ".tainik"
}

func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.home, "home", c.home, "profile directory (default $TAINIK_HOME or ~/.tainik)")
	fs.BoolVar(&c.json, "json", c.json, "print JSON for scripts")
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses flags, allowing them before and after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%v (see 'tainik help')", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// anyNumber, as the most positional arguments, sets no upper limit.
const anyNumber = -1

// positional parses args with fs and checks that at least least and at
// most most positional arguments remain; otherwise it returns usage as the
// error.
func positional(fs *flag.FlagSet, args []string, least, most int, usage string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < least || most != anyNumber && len(pos) > most {
		return nil, errors.New(usage)
	}
	return pos, nil
}

// openWith is the prologue of most commands: positional, then open. The
// caller closes the client.
func (c *cli) openWith(fs *flag.FlagSet, args []string, least, most int, usage string) ([]string, *client.Client, error) {
	pos, err := positional(fs, args, least, most, usage)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.open()
	if err != nil {
		return nil, nil, err
	}
	return pos, cl, nil
}

func (c *cli) run(args []string) error {
	c.home = defaultHome()
	g := c.flags("tainik")
	if err := g.Parse(args); err != nil {
		return fmt.Errorf("%v (see 'tainik help')", err)
	}
	args = g.Args()
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, usage)
		return nil
	case "init":
		return c.cmdInit(args)
	case "whoami":
		return c.cmdWhoami(args)
	case "invite":
		return c.cmdInvite(args)
	case "connect":
		return c.cmdConnect(args)
	case "contacts":
		return c.cmdContacts(args)
	case "safety-number":
		return c.cmdSafety(args)
	case "verify":
		return c.cmdVerify(args)
	case "send":
		return c.cmdSend(args)
	case "read":
		return c.cmdRead(args)
	case "group":
		return c.cmdGroup(args)
	case "disappear":
		return c.cmdDisappear(args)
	case "send-file":
		return c.cmdSendFile(args)
	case "get-file":
		return c.cmdGetFile(args)
	case "watch":
		return c.cmdWatch(args)
	case "chat":
		return c.cmdChat(args)
	case "backup":
		return c.cmdBackup(args)
	case "restore":
		return c.cmdRestore(args)
	}
	return fmt.Errorf("unknown command %q (see 'tainik help')", cmd)
}

func (c *cli) passphrase() ([]byte, error) {
	if p, ok := os.LookupEnv("TAINIK_PASSPHRASE"); ok {
		return []byte(p), nil
	}
	fmt.Fprint(os.Stderr, "passphrase: ")
	line, err := c.stdin.ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" && err != nil {
		return nil, errors.New("no passphrase: set TAINIK_PASSPHRASE or type it on standard input")
	}
	return []byte(line), nil
}

var clientOpts = client.Options{DialTimeout: 5 * time.Second}

func (c *cli) open() (*client.Client, error) {
	pw, err := c.passphrase()
	if err != nil {
		return nil, err
	}
	cl, err := client.Open(c.home, pw, clientOpts)
	if errors.Is(err, client.ErrNoProfile) {
		return nil, fmt.Errorf("no profile in %s: run 'tainik --home %s init --relay ADDR' first", c.home, c.home)
	}
	if err == nil {
		c.warn(cl)
	}
	return cl, err
}

// warn prints key-change alarms on every command, to standard error so
// that scripts reading --json see them too.
func (c *cli) warn(cl *client.Client) {
	for _, w := range cl.Warnings() {
		fmt.Fprintf(os.Stderr, "\n!!! WARNING: %s !!!\n\n", w)
	}
}

func (c *cli) out(v any, human string, a ...any) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintf(c.stdout, human, a...)
	return err
}

func (c *cli) cmdInit(args []string) error {
	fs := c.flags("init")
	relayAddr := fs.String("relay", os.Getenv("TAINIK_RELAY"), "relay address tainik://<fingerprint>@host:port")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	pw, err := c.passphrase()
	if err != nil {
		return err
	}
	if *relayAddr != "" && !strings.HasPrefix(*relayAddr, "tainik://") {
		return fmt.Errorf("%q is not a relay address: pass the tainik://<fingerprint>@host:port that tainikd printed", *relayAddr)
	}
	cl, err := client.Init(c.home, pw, *relayAddr, clientOpts)
	if err != nil {
		return err
	}
	defer cl.Close()
	id := hex.EncodeToString(cl.Identity())
	return c.out(map[string]string{"home": c.home, "identity": id, "relay": cl.Relay()},
		"created profile in %s\nidentity %s\n", c.home, id)
}

func (c *cli) cmdWhoami(args []string) error {
	_, cl, err := c.openWith(c.flags("whoami"), args, 0, anyNumber, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	id := hex.EncodeToString(cl.Identity())
	return c.out(map[string]string{"home": c.home, "identity": id, "relay": cl.Relay()},
		"identity %s\nrelay    %s\n", id, cl.Relay())
}

func (c *cli) cmdInvite(args []string) error {
	fs := c.flags("invite")
	name := fs.String("name", "", "local name for the contact who answers")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the link is valid")
	showQR := fs.Bool("qr", true, "also print the link as a QR code")
	reusable := fs.Bool("reusable", false, "a long-lived contact address (a tip line): everyone who answers becomes a contact")
	_, cl, err := c.openWith(fs, args, 0, anyNumber, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	invite, who := cl.Invite, "for one contact"
	if *reusable {
		invite, who = cl.ContactAddress, "for anyone who has it"
	}
	inv, err := invite(c.ctx, *name, *ttl)
	if err != nil {
		return err
	}
	link := inv.Link()
	code := ""
	if *showQR && !c.json {
		if code, err = terminalQR(link); err != nil {
			return err
		}
	}
	return c.out(map[string]any{"link": link, "expires": inv.Expires.UTC()},
		"%s%s\nvalid until %s, %s. Send it over a channel you trust, or let them scan the code; then run 'tainik read' to accept.\n",
		code, link, inv.Expires.UTC().Format(time.RFC3339), who)
}

func (c *cli) cmdConnect(args []string) error {
	fs := c.flags("connect")
	name := fs.String("name", "", "local name for the inviter")
	pos, err := positional(fs, args, 1, 1, "connect takes one invitation link: tainik connect [--name NAME] tainik:invite/... (or - to read it from standard input)")
	if err != nil {
		return err
	}
	link := pos[0]
	if link == "-" {
		if link, err = c.linkFromStdin(); err != nil {
			return err
		}
	}
	cl, err := c.open()
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Connect(c.ctx, link, *name); err != nil {
		return err
	}
	// The inviter may already have answered; try once.
	rep, err := cl.Sync(c.ctx)
	if err != nil {
		return err
	}
	if len(rep.NewContacts) > 0 {
		return c.out(map[string]string{"status": "connected", "contact": rep.NewContacts[0]},
			"connected to %s\n", rep.NewContacts[0])
	}
	return c.out(map[string]string{"status": "requested"},
		"contact request sent; the conversation starts when your contact runs 'tainik read', then run 'tainik read' yourself\n")
}

type contactJSON struct {
	Name         string `json:"name"`
	Identity     string `json:"identity"`
	Verified     bool   `json:"verified"`
	SafetyNumber string `json:"safety_number"`
}

func (c *cli) cmdContacts(args []string) error {
	_, cl, err := c.openWith(c.flags("contacts"), args, 0, anyNumber, "")
	if err != nil {
		return err
	}
	defer cl.Close()
	list := []contactJSON{}
	var sb strings.Builder
	for _, ct := range cl.Contacts() {
		sn, _ := cl.SafetyNumber(ct.Name)
		list = append(list, contactJSON{ct.Name, hex.EncodeToString(ct.Identity), ct.Verified, sn})
		v := "not verified"
		if ct.Verified {
			v = "verified"
		}
		fmt.Fprintf(&sb, "%-16s %s  %s\n", ct.Name, hex.EncodeToString(ct.Identity)[:16], v)
	}
	if len(list) == 0 && !c.json {
		sb.WriteString("no contacts yet: 'tainik invite' makes a link, 'tainik connect LINK' answers one\n")
	}
	return c.out(list, "%s", sb.String())
}

func (c *cli) cmdSafety(args []string) error {
	pos, cl, err := c.openWith(c.flags("safety-number"), args, 1, 1, "safety-number takes a contact name: tainik safety-number CONTACT")
	if err != nil {
		return err
	}
	defer cl.Close()
	sn, err := cl.SafetyNumber(pos[0])
	if err != nil {
		return err
	}
	code, err := terminalQR("tainik:safety/" + sn)
	if err != nil || c.json {
		code = ""
	}
	return c.out(map[string]string{"contact": pos[0], "safety_number": sn},
		"%s%s\nCompare it with %s in person or over a call; if it matches, run 'tainik verify %s'.\n",
		code, client.FormatSafetyNumber(sn), pos[0], pos[0])
}

func (c *cli) cmdVerify(args []string) error {
	pos, cl, err := c.openWith(c.flags("verify"), args, 1, anyNumber, "verify takes a contact name and, optionally, the number they read to you: tainik verify CONTACT [NUMBER]")
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Verify(pos[0], strings.Join(pos[1:], "")); err != nil {
		return err
	}
	return c.out(map[string]any{"contact": pos[0], "verified": true}, "%s is verified\n", pos[0])
}

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

func (c *cli) progress(verb string) client.Progress {
	if c.json {
		return nil
	}
	return func(done, total int64) {
		pct := int64(100)
		if total > 0 {
			pct = done * 100 / total
		}
		fmt.Fprintf(os.Stderr, "\r%s %d/%d bytes (%d%%)", verb, done, total, pct)
		if done == total {
			fmt.Fprintln(os.Stderr)
		}
	}
}

func (c *cli) cmdSendFile(args []string) error {
	pos, cl, err := c.openWith(c.flags("send-file"), args, 2, 2, "send-file takes a conversation and a file: tainik send-file CONTACT|GROUP PATH")
	if err != nil {
		return err
	}
	defer cl.Close()
	cv, err := cl.FindConversation(pos[0])
	if err != nil {
		return err
	}
	m, err := cl.SendFile(c.ctx, cv, pos[1], c.progress("uploaded"))
	if err != nil {
		return err
	}
	return c.out(m, "sent %s\n", m.File.Name)
}

func (c *cli) cmdGetFile(args []string) error {
	fs := c.flags("get-file")
	out := fs.String("out", "", "where to save (default: the file's name in the current directory)")
	pos, cl, err := c.openWith(fs, args, 2, 2, "get-file takes a conversation and a file name: tainik get-file CONTACT|GROUP NAME [--out PATH]")
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Sync(c.ctx); err != nil {
		return err
	}
	cv, err := cl.FindConversation(pos[0])
	if err != nil {
		return err
	}
	ref, err := cl.FindFile(cv, pos[1])
	if err != nil {
		return err
	}
	dest := *out
	if dest == "" {
		dest = filepath.Base(ref.Name)
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("%s exists: choose another place with --out", dest)
	}
	if err := cl.GetFile(c.ctx, ref, dest, c.progress("downloaded")); err != nil {
		return err
	}
	return c.out(map[string]any{"path": dest, "size": ref.Size}, "saved %s (%d bytes, checksum verified)\n", dest, ref.Size)
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

func (c *cli) cmdBackup(args []string) error {
	pos, cl, err := c.openWith(c.flags("backup"), args, 1, 1, "backup takes a file to write: tainik backup FILE")
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Backup(pos[0]); err != nil {
		return err
	}
	return c.out(map[string]string{"backup": pos[0]}, "wrote %s (encrypted with your passphrase)\n", pos[0])
}

func (c *cli) cmdRestore(args []string) error {
	pos, err := positional(c.flags("restore"), args, 1, 1, "restore takes a backup file: tainik --home DIR restore FILE")
	if err != nil {
		return err
	}
	pw, err := c.passphrase()
	if err != nil {
		return err
	}
	cl, err := client.Restore(c.home, pos[0], pw, clientOpts)
	if err != nil {
		return err
	}
	defer cl.Close()
	return c.out(map[string]string{"home": c.home}, "restored into %s\n", c.home)
}

// linkFromStdin finds an invitation link in standard input, so that the
// output of 'tainik invite' can be piped in.
func (c *cli) linkFromStdin() (string, error) {
	data, err := io.ReadAll(c.stdin)
	if err != nil {
		return "", fmt.Errorf("read standard input: %v", err)
	}
	for _, f := range strings.Fields(string(data)) {
		if strings.HasPrefix(f, client.InvitePrefix) {
			return f, nil
		}
	}
	return "", errors.New("no tainik:invite/ link on standard input")
}
