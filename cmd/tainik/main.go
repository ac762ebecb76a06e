// Command tainik is the Tainik command-line client.
//
//	tainik [--home DIR] [--json] COMMAND [ARGS]
//
// The passphrase of the local store is read from TAINIK_PASSPHRASE or,
// if that is unset, from the first line of standard input (without echo
// when that is a terminal).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

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
  watch [--interval 30s]   print messages as they arrive (the relay pushes them;
                           --interval is the fallback fetch)
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
		// Errors can carry what others chose (relay addresses, a
		// relay's message, a file name): shown terminal-safe.
		fmt.Fprintln(os.Stderr, "tainik:", termSafe(strings.TrimPrefix(err.Error(), "client: ")))
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
	if fd := int(os.Stdin.Fd()); c.stdin.Buffered() == 0 && term.IsTerminal(fd) {
		// Typed at a terminal: not echoed.
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil || len(pw) == 0 {
			return nil, errors.New("no passphrase: type it when asked, or set TAINIK_PASSPHRASE")
		}
		return pw, nil
	}
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
		fmt.Fprintf(os.Stderr, "\n!!! WARNING: %s !!!\n\n", termSafe(w))
	}
}

// sync runs Sync for a command that goes on with what it read: the parts
// that failed are printed as warnings, and the report says which.
// Only an error that stopped Sync as a whole is returned.
func (c *cli) sync(ctx context.Context, cl *client.Client) (*client.SyncReport, error) {
	rep, err := cl.Sync(ctx)
	var partial *client.SyncError
	if err != nil && !errors.As(err, &partial) {
		return rep, err
	}
	for _, f := range rep.Failed {
		fmt.Fprintf(os.Stderr, "tainik: %s: %s\n", termSafe(f.What), termSafe(strings.TrimPrefix(f.Err.Error(), "client: ")))
	}
	for _, f := range rep.Waiting {
		fmt.Fprintf(os.Stderr, "tainik: %s: not done yet, tried again later: %s\n", termSafe(f.What), termSafe(strings.TrimPrefix(f.Err.Error(), "client: ")))
	}
	return rep, nil
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
