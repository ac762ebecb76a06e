//go:build !unix

package client

import "time"

// homeLock is a no-op where there are no file locks (js/wasm keeps one
// client per store anyway).
type homeLock struct{}

func lockHome(home string, wait time.Duration) (*homeLock, error) { return &homeLock{}, nil }

func (l *homeLock) unlock() {}
