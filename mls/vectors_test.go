package mls

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// vectorDir returns the folder of official test vectors: $MLS_TEST_VECTORS,
// or ../shared/mls-test-vectors beside the repository. When it is absent the
// test skips, unless MLS_TEST_VECTORS was set (as CI does), when it fails.
func vectorDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MLS_TEST_VECTORS")
	required := dir != ""
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "mls-test-vectors")
	}
	if _, err := os.Stat(dir); err != nil {
		if required {
			t.Fatalf("MLS_TEST_VECTORS=%s: %v", dir, err)
		}
		t.Skipf("official MLS test vectors not found at %s; set MLS_TEST_VECTORS to a checkout of mlswg/mls-implementations/test-vectors", dir)
	}
	return dir
}

// TestVectors runs every case of every official vector file, one subtest per
// case.
func TestVectors(t *testing.T) {
	dir := vectorDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no .json files in %s", dir)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		kind, cases, err := loadVectors(data)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			for i, c := range cases {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					t.Parallel()
					if err := kind.check(c); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}
