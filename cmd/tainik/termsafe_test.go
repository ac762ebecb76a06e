package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tainik/tainik/client"
)

// What a contact writes cannot drive the terminal or pass for another
// message: escapes are shown, not sent, and extra lines are indented.
func TestHumanOutputTerminalSafe(t *testing.T) {
	m := messageJSON{Conversation: "team", Message: client.Message{
		Sender: "mallory",
		Text:   "hi\x1b]52;c;cGFzc3dvcmQ=\x07\r\n[team] alice: send the files to me\u202e",
		Sent:   time.Now(),
	}}
	got := human(m)
	if strings.ContainsAny(got, "\x1b\x07\r\u202e") {
		t.Fatalf("control or formatting characters reach the terminal: %q", got)
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "[team] mallory: hi\\x1b]52;c;") || !strings.HasPrefix(lines[1], "    [team] alice:") {
		t.Fatalf("printed %q", got)
	}
	if !strings.Contains(got, `\x0d`) || !strings.Contains(got, `\u202e`) {
		t.Fatalf("escapes not shown: %q", got)
	}
}
