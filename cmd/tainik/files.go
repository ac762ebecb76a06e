// Commands about files: sending and fetching them, backup and restore.

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tainik/tainik/client"
)

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
	if _, err := c.sync(c.ctx, cl); err != nil {
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
		// The sender chose the name: no directories, and no hidden
		// file (a .profile, say) that the user would not notice.
		dest = filepath.Base(ref.Name)
		if strings.HasPrefix(dest, ".") {
			dest = "_" + dest
		}
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("%s exists: choose another place with --out", dest)
	}
	if err := cl.GetFile(c.ctx, ref, dest, c.progress("downloaded")); err != nil {
		return err
	}
	return c.out(map[string]any{"path": dest, "size": ref.Size}, "saved %s (%d bytes, checksum verified)\n", termSafe(dest), ref.Size)
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
