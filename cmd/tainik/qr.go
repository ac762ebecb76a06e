package main

import (
	"fmt"
	"strings"

	"rsc.io/qr"
)

// terminalQR renders text as a QR code with half-block characters, two
// modules per character cell, light on dark as terminals usually show it,
// with the four-module quiet zone that scanners need.
func terminalQR(text string) (string, error) {
	code, err := qr.Encode(text, qr.L)
	if err != nil {
		return "", fmt.Errorf("cannot make a QR code: %v", err)
	}
	const quiet = 4
	n := code.Size + 2*quiet
	black := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
	}
	var sb strings.Builder
	for y := 0; y < n; y += 2 {
		for x := range n {
			top, bottom := !black(x, y), y+1 < n && !black(x, y+1)
			switch {
			case top && bottom:
				sb.WriteRune('█')
			case top:
				sb.WriteRune('▀')
			case bottom:
				sb.WriteRune('▄')
			default:
				sb.WriteRune(' ')
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}
