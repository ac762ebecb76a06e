package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"tainik": main})
}

// TestScripts runs testdata/script/*.txtar, each with its own relay
// process, whose address is in $RELAY.
func TestScripts(t *testing.T) {
	relayd := filepath.Join(t.TempDir(), "tainikd")
	if out, err := exec.Command("go", "build", "-o", relayd, "../tainikd").CombinedOutput(); err != nil {
		t.Fatalf("go build tainikd: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			cmd := exec.Command(relayd, "-listen", "127.0.0.1:0", "-data", filepath.Join(env.WorkDir, ".relay"), "-log-level", "error")
			out, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return err
			}
			sc := bufio.NewScanner(out)
			if !sc.Scan() || !strings.HasPrefix(sc.Text(), "tainik://") {
				cmd.Process.Kill()
				cmd.Wait()
				env.T().Fatal("relay did not print its address")
			}
			env.Setenv("RELAY", sc.Text())
			env.Defer(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			go func() {
				for sc.Scan() {
				}
			}()
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
	})
}
