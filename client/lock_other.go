//go:build !unix

package client

import (
	"context"
	"time"
)

// homeLock is a no-op where there are no file locks (js/wasm keeps one
// client per store anyway).
type homeLock struct{}

func lockHome(ctx context.Context, home string, wait time.Duration) (*homeLock, error) {
	return &homeLock{}, nil
}

func (l *homeLock) unlock() {}
