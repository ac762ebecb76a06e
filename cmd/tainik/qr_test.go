package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTerminalQR(t *testing.T) {
	s, err := terminalQR("tainik:invite/" + strings.Repeat("A", 360))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	w := utf8.RuneCountInString(lines[0])
	if w < 21+8 || (w+1)/2 != len(lines) {
		t.Fatalf("QR of %d lines, %d wide", len(lines), w)
	}
	for _, l := range lines {
		if utf8.RuneCountInString(l) != w {
			t.Fatal("ragged QR")
		}
	}
}
