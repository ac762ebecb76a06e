// Commands about contacts: the profile, invitations, safety numbers.

package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tainik/tainik/client"
)

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
	rep, err := c.sync(c.ctx, cl)
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
