package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup writes a copy of the encrypted store to dest. The copy is
// encrypted under the same passphrase.
//
// A backup holds MLS state: restoring an old one resumes each
// conversation at the epoch it was taken in and reads on from the log
// (entries expire after the relay's retention). Its first send in each
// conversation commits fresh keys, since the old ratchet may repeat keys
// used after the backup was made.
func (c *Client) Backup(dest string) error {
	if err := c.save(); err != nil {
		return err
	}
	data, err := os.ReadFile(c.vault.path)
	if err != nil {
		return fmt.Errorf("client: backup: %w", err)
	}
	if err := os.WriteFile(dest, data, 0o600); err != nil {
		return fmt.Errorf("client: backup: %w", err)
	}
	return nil
}

// Restore puts the backup src into home, which must hold no profile, after
// checking that passphrase opens it.
func Restore(home, src string, passphrase []byte, opts Options) (*Client, error) {
	if _, err := os.Stat(storePath(home)); err == nil {
		return nil, fmt.Errorf("client: %s already holds a profile: restore into an empty --home", home)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(home)), ".tainik-restore-")
	if err != nil {
		// home's parent may not exist yet.
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, fmt.Errorf("client: restore: %w", err)
		}
		tmp, err = os.MkdirTemp(home, ".restore-")
		if err != nil {
			return nil, fmt.Errorf("client: restore: %w", err)
		}
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(storePath(tmp), data, 0o600); err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	st := new(state)
	v, err := openVault(tmp, passphrase, st)
	if err != nil {
		if errors.Is(err, ErrWrongPassphrase) {
			return nil, fmt.Errorf("client: the passphrase does not open this backup: use the passphrase the profile had when the backup was made")
		}
		return nil, err
	}
	// Every conversation refreshes its keys before its next send: the
	// backup's ratchets may be behind keys already used. This goes into
	// the store before it is placed, so that no process that opens it
	// (a waiting 'tainik watch', say) can send with the old ratchet.
	for _, cv := range st.Convs {
		cv.Refresh = true
	}
	if err := v.save(st); err != nil {
		return nil, err
	}
	if data, err = os.ReadFile(storePath(tmp)); err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	// Placed under the home's lock (as Init creates a store), from a
	// file of its own, and never over a profile another process created
	// meanwhile.
	f, err := os.CreateTemp(home, ".restore-*")
	if err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	placed := f.Name()
	defer os.Remove(placed)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	lock, err := lockHome(context.Background(), home, lockWait)
	if err != nil {
		return nil, err
	}
	err = placeNew(placed, storePath(home))
	lock.unlock()
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("client: %s already holds a profile: restore into an empty --home", home)
	}
	if err != nil {
		return nil, fmt.Errorf("client: restore: %w", err)
	}
	return Open(home, passphrase, opts)
}
