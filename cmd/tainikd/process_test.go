package main

import (
	"bufio"
	"bytes"
	"context"
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

// buildRelay builds tainikd into a temporary directory once per test.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tainikd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback address that was free a moment ago; the
// relay is restarted on it after each kill so clients find it again.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type relayProc struct {
	cmd    *exec.Cmd
	addr   string
	stdout string
	stderr *syncBuffer
	done   chan error
}

// startProc starts the relay and waits for it to print its address.
func startProc(t *testing.T, bin, dataDir, listen string, args ...string) *relayProc {
	t.Helper()
	stderr := &syncBuffer{}
	var p *relayProc
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
		p = &relayProc{cmd: cmd, stderr: stderr, done: make(chan error, 1)}
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
				p.addr, p.stdout = line, line
				t.Cleanup(func() { p.kill() })
				return p
			}
		case <-time.After(20 * time.Second):
		}
		// The port can be briefly unavailable after a kill; retry.
		cmd.Process.Kill()
		<-p.done
		if time.Now().After(deadline) {
			t.Fatalf("relay did not start; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // retry interval
	}
}

func (p *relayProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// stop sends SIGTERM and returns the exit error.
func (p *relayProc) stop(t *testing.T) error {
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

// grepTree reports files under dir that contain marker.
func grepTree(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, marker) {
			hits = append(hits, path)
		}
		return nil
	})
	return hits
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
