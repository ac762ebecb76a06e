package client

import (
	"context"
	"strings"
	"testing"

	"github.com/tainik/tainik/relay/server"
)

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"team":                         "team",
		"  news   desk ":               "news desk",
		"evil\x1b[2Jname":              "evil[2Jname",
		"a\u202egnp.exe":               "agnp.exe",
		"bad\xffutf8":                  "bad\uFFFDutf8",
		"line\nbreak\r\ttab":           "line break tab",
		"\u200b\u2066":                 "",
		strings.Repeat("x", 100):       strings.Repeat("x", maxNameRunes),
		strings.Repeat("é", 70):        strings.Repeat("é", maxNameRunes),
		strings.Repeat("x", 63) + " y": strings.Repeat("x", 63),
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// A member who renames a group with terminal escapes and direction
// overrides gets a clean name at the others; the API refuses such names.
func TestRenameCleaned(t *testing.T) {
	ctx := context.Background()
	a, b, _ := pair(t, server.Config{})
	mustSync(t, b, a)
	ga, err := a.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(ctx, ga, "b"); err != nil {
		t.Fatal(err)
	}
	if err := a.Rename(ctx, ga, "x\x1b]52;c;AAAA\x07"); err == nil {
		t.Error("Rename accepted a name with control characters")
	}
	g, err := a.group(ga)
	if err != nil {
		t.Fatal(err)
	}
	pl := a.newPayload("rename")
	pl.Text = "evil\x1b]52;c;AAAA\x07 \u202Egnp.exe"
	if _, err := a.sendPayload(ctx, ga, g, pl); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	var names []string
	for _, cv := range b.Conversations() {
		names = append(names, cv.Name)
	}
	if !strings.Contains(strings.Join(names, "|"), "evil]52;c;AAAA gnp.exe") {
		t.Fatalf("b's conversations after the rename: %q", names)
	}
}
