package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// runFsync measures the disk under -fsync-dir: it appends 4 KiB and
// calls fdatasync, one after the other, for -duration, and prints the
// latency distribution. A durable write can be answered no sooner than
// one of these, so their tail bounds the relay's latency tail.
func runFsync(cfg config) error {
	dir, err := os.MkdirTemp(cfg.fsyncDir, "tainik-fsync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	block := make([]byte, 4096)
	var lat latencies
	end := time.Now().Add(cfg.duration)
	for time.Now().Before(end) {
		t0 := time.Now()
		if _, err := f.Write(block); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
		lat.add(time.Since(t0))
	}
	p50, p99, n := lat.quantiles()
	fmt.Printf("mode=fsync dir=%s: %d appends of 4 KiB, each followed by fdatasync\n", cfg.fsyncDir, n)
	fmt.Printf("fdatasync latency: p50 %v p99 %v max %v (%.0f/s)\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond), lat.d[len(lat.d)-1].Round(time.Microsecond), float64(n)/cfg.duration.Seconds())
	return nil
}
