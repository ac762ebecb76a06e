// Command mls-vectors runs the official MLS interoperability test vectors
// (mlswg/mls-implementations, test-vectors/*.json) against the mls package.
//
// Usage:
//
//	go run ./cmd/mls-vectors [-v] FILE...
//
// It recognises each file's vector type from its content, runs every case and
// prints one line per file, "FILE: N passed, N failed, N skipped", followed by
// the reason for every skip (and, with -v, for every failure). It exits 1 if
// any case failed or a file could not be read.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tainik/tainik/mls"
)

func main() {
	verbose := flag.Bool("v", false, "print the reason for every failed case")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: mls-vectors [-v] FILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	failed := false
	for _, file := range flag.Args() {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mls-vectors: %v\n", err)
			failed = true
			continue
		}
		r, err := mls.RunTestVectors(data)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			failed = true
			continue
		}
		fmt.Printf("%s: %d passed, %d failed, %d skipped (%s)\n", file, r.Passed, r.Failed, r.Skipped, r.Kind)
		for _, s := range r.Skips {
			fmt.Printf("  skipped %s\n", s)
		}
		if r.Failed > 0 {
			failed = true
			if *verbose {
				for _, f := range r.Failures {
					fmt.Printf("  failed %s\n", f)
				}
			} else {
				fmt.Printf("  first failure: %s\n", r.Failures[0])
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}
