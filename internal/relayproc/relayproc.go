// Package relayproc runs tainikd as a real process for end-to-end tests:
// it builds binaries, starts the relay, reads the address it prints, and
// kills or stops it. Tests of the relay and of the CLI share it.
package relayproc

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the Go package pkg (a path relative to the test's working
// directory) into a temporary directory and returns the binary's path.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// FreeAddr returns a loopback address that was free a moment ago, for a
// relay that must come back on the same address after a restart.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers,
// for a child process's output.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a running relay process.
type Proc struct {
	// Addr is the tainik:// address the relay printed.
	Addr string
	// Stderr holds the relay's log output.
	Stderr *SyncBuffer
	cmd    *exec.Cmd
	done   chan error
}

// Start runs the relay binary bin on dataDir and listen with extra args,
// and waits until it prints its address. A port briefly unavailable after
// a kill is retried for up to 20 seconds. The process is killed when the
// test ends.
func Start(t testing.TB, bin, dataDir, listen string, args ...string) *Proc {
	t.Helper()
	stderr := &SyncBuffer{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command(bin, append([]string{"-listen", listen, "-data", dataDir}, args...)...)
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &Proc{cmd: cmd, Stderr: stderr, done: make(chan error, 1)}
		lines := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			if sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			for sc.Scan() {
			}
			p.done <- cmd.Wait()
		}()
		select {
		case line, ok := <-lines:
			if ok && strings.HasPrefix(line, "tainik://") {
				p.Addr = line
				t.Cleanup(p.Kill)
				return p
			}
		case <-time.After(20 * time.Second):
		}
		cmd.Process.Kill()
		<-p.done
		if time.Now().After(deadline) {
			t.Fatalf("relay did not start; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // retry interval
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
	}
}

// Stop sends SIGTERM and returns the exit error.
func (p *Proc) Stop(t testing.TB) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not stop after SIGTERM")
		return nil
	}
}

// GrepTree lists the files under dir that contain marker.
func GrepTree(dir string, marker []byte) []string {
	var hits []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err == nil && bytes.Contains(data, marker) {
			hits = append(hits, path)
		}
		return nil
	})
	return hits
}
