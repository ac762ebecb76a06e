//go:build unix

package main

import "syscall"

// privateFiles makes every file and directory the relay creates readable
// by its own user only, including those the store engines create with
// their own modes (pebble asks for 0644).
func privateFiles() { syscall.Umask(0o077) }
