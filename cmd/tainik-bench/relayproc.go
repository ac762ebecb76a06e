package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// relayProc is a tainikd started by the bench.
type relayProc struct {
	cmd   *exec.Cmd
	addr  string
	dir   string
	debug string // host:port of the relay's /debug/pprof/
}

func startRelay(cfg config) (*relayProc, error) {
	dir, err := os.MkdirTemp("", "tainik-bench-")
	if err != nil {
		return nil, err
	}
	bin := cfg.tainikd
	if bin == "" {
		bin = filepath.Join(dir, "tainikd")
		out, err := exec.Command("go", "build", "-o", bin, "./cmd/tainikd").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("building tainikd (run from the repository root): %v\n%s", err, out)
		}
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-data", filepath.Join(dir, "data"), "-log-level", "warn",
		"-max-queue-messages", "1000000", "-idle-after", cfg.idleAfter.String(), "-store", cfg.store)
	// A free port for the relay's profiling endpoints, which idle mode
	// reads to measure the live heap after a collection.
	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	debug := dl.Addr().String()
	dl.Close()
	cmd.Args = append(cmd.Args, "-debug-listen", debug)
	if cfg.cpuProfile != "" {
		cmd.Args = append(cmd.Args, "-cpuprofile", cfg.cpuProfile)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
		for sc.Scan() {
		}
	}()
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "tainik://") {
			cmd.Process.Kill()
			return nil, fmt.Errorf("relay printed %q", l)
		}
		return &relayProc{cmd: cmd, addr: l, dir: dir, debug: debug}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("relay did not start")
	}
}

func (p *relayProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(p.dir)
}

// cpuTime returns the process's user+system CPU time.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// rss returns the process's resident set size in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// liveHeap makes the relay collect garbage twice (the second time frees
// what buffer pools let go of in the first) and returns its live heap and
// goroutine-stack bytes, from /debug/pprof/heap.
func liveHeap(debug string) (heap, stack int64, err error) {
	if resp, err := http.Get("http://" + debug + "/debug/pprof/heap?gc=1"); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + debug + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapAlloc = "); ok {
			heap, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "# StackInuse = "); ok {
			stack, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if heap == 0 {
		return 0, 0, errors.New("no HeapAlloc in the relay's heap profile")
	}
	return heap, stack, nil
}
