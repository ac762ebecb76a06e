//go:build unix

package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// homeLock is an exclusive lock on a home directory, so that two
// processes never interleave writes to the store (which would roll MLS
// state back and reuse keys).
type homeLock struct{ f *os.File }

// lockHome takes the lock, waiting up to wait while another process holds
// it, or until ctx ends.
func lockHome(ctx context.Context, home string, wait time.Duration) (*homeLock, error) {
	f, err := os.OpenFile(filepath.Join(home, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("client: lock home: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &homeLock{f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("client: lock home: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, &BusyError{home}
		}
		select { // another command is finishing
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		}
	}
}

func (l *homeLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
