package mls

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces that the mls package depends only on the standard
// library, golang.org/x/crypto and cloudflare/circl, so that it stays a
// self-contained RFC 9420 implementation that builds for the browser.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/tainik/tainik/mls",
		"golang.org/x/crypto/",
		"golang.org/x/sys/", // only through golang.org/x/crypto (CPU feature detection)
		"github.com/cloudflare/circl/",
	}
	var deps int
	for _, dep := range strings.Fields(string(out)) {
		deps++
		ok := false
		for _, prefix := range allowed {
			if dep == prefix || strings.HasPrefix(dep, prefix) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("mls depends on %s; only the standard library, golang.org/x/crypto and cloudflare/circl are allowed", dep)
		}
	}
	if deps == 0 {
		t.Fatal("go list printed no packages; the check saw nothing")
	}
}
