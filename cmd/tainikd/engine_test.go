package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tainik/tainik/internal/relayproc"
	"github.com/tainik/tainik/relay/server/store"
)

// TestEngineMismatch: a data directory made by one engine is refused by
// the other, and the message says which flag keeps it working.
func TestEngineMismatch(t *testing.T) {
	bin := relayproc.Build(t, ".", "tainikd")
	dir := t.TempDir()
	b, err := store.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	out, err := exec.Command(bin, "-data", dir, "-listen", "127.0.0.1:0").CombinedOutput()
	if err == nil {
		t.Fatalf("tainikd started on a bbolt directory with the default engine:\n%s", out)
	}
	if !strings.Contains(string(out), "run with -store bolt") {
		t.Errorf("output does not say how to keep the store:\n%s", out)
	}
}
