package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/tainik/tainik/relay"
)

// raiseFDLimit raises this process's open-file limit; a relay started
// afterwards inherits it. The relay's own defaults are not changed.
func raiseFDLimit(n int) {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return
	}
	want := uint64(n)
	if r.Cur >= want {
		return
	}
	if r.Max < want {
		r.Max = want // works as root
	}
	r.Cur = want
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// runIdle opens cfg.idle WebSocket connections that complete the handshake,
// read the Hello and then stay idle, spread over several 127.0.0.x source
// addresses (one address has about 28 000 ephemeral ports), and reports
// the relay's memory growth per connection.
func runIdle(cfg config) error {
	raiseFDLimit(2*cfg.idle + 10000)
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if max := int(lim.Cur) - 500; cfg.idle > max {
		// The bench holds one descriptor per connection (and so does a
		// relay it starts); past the limit it cannot even read /proc to
		// measure.
		fmt.Printf("open-file limit is %d (hard %d): running %d connections instead of %d\n", lim.Cur, lim.Max, max, cfg.idle)
		cfg.idle = max
	}
	addr, pid, debug := cfg.addr, cfg.relayPID, ""
	if addr == "" {
		p, err := startRelay(cfg)
		if err != nil {
			return err
		}
		defer p.stop()
		addr, pid, debug = p.addr, p.cmd.Process.Pid, p.debug
	}
	a, err := relay.ParseAddress(addr)
	if err != nil {
		return err
	}

	const perSource = 25000
	var next atomic.Uint64
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		n := next.Add(1)
		src := net.IPv4(127, 0, 0, byte(2+int(n)/perSource))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 30 * time.Second}
		return d.DialContext(ctx, network, addr)
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext:     dialer,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // a bench; the client package pins
		MaxIdleConns:    -1,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	time.Sleep(500 * time.Millisecond)
	var heap0, stack0 int64
	if debug != "" {
		heap0, stack0, err = liveHeap(debug)
		if err != nil {
			return err
		}
	}
	base := rss(pid)
	m0 := scrape(hc, a.HostPort)
	conns := make([]*websocket.Conn, cfg.idle)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	t0 := time.Now()
	for i := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			defer dcancel()
			ws, _, err := websocket.Dial(dctx, "wss://"+a.HostPort+relay.Path, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{relay.Subprotocol}})
			if err != nil {
				failed.Add(1)
				return
			}
			ws.SetReadLimit(relay.MaxResponseSize)
			rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
			_, _, err = ws.Read(rctx)
			rcancel()
			if err != nil {
				failed.Add(1)
				ws.CloseNow()
				return
			}
			conns[i] = ws
		}()
	}
	wg.Wait()
	setup := time.Since(t0)
	// Let the relay park the connections and settle (GC) before
	// measuring.
	time.Sleep(cfg.idleAfter + 3*time.Second)
	// A relay whose connections are mostly parked returns its free
	// memory to the system (relay/server/trim.go): wait until it has
	// done so with every connection parked. The last connections to
	// park may wait for the settled-wave rule, up to a minute.
	open := int64(cfg.idle) - failed.Load()
	trimmed := false
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if trimmed = int64(scrape(hc, a.HostPort)["tainik_relay_memory_trim_parked"]) >= open; trimmed {
			break
		}
	}
	after := rss(pid)
	m1 := scrape(hc, a.HostPort)
	fmt.Printf("mode=idle connections=%d (failed %d) setup=%v\n", open, failed.Load(), setup.Round(time.Millisecond))
	if !trimmed {
		fmt.Println("the relay did not return free memory to the system with every connection parked within 90 s")
	}
	fmt.Printf("relay RSS: %.1f MiB before, %.1f MiB with the connections\n", float64(base)/(1<<20), float64(after)/(1<<20))
	if open > 0 {
		fmt.Printf("relay memory per idle connection: %.1f KB RSS (Go heap %.1f KB, stacks %.1f KB, %.1f goroutines)\n",
			float64(after-base)/float64(open)/1000,
			(m1["tainik_relay_heap_inuse_bytes"]-m0["tainik_relay_heap_inuse_bytes"])/float64(open)/1000,
			(m1["tainik_relay_stack_inuse_bytes"]-m0["tainik_relay_stack_inuse_bytes"])/float64(open)/1000,
			(m1["tainik_relay_goroutines"]-m0["tainik_relay_goroutines"])/float64(open))
	}
	if debug != "" && open > 0 {
		heap1, stack1, err := liveHeap(debug)
		if err != nil {
			return err
		}
		fmt.Printf("after a collection: live heap %.2f KB and stacks %.2f KB per idle connection; relay RSS then %.1f MiB\n",
			float64(heap1-heap0)/float64(open)/1000, float64(stack1-stack0)/float64(open)/1000, float64(rss(pid))/(1<<20))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("bench process heap: %.1f MiB\n", float64(ms.HeapInuse)/(1<<20))
	for _, ws := range conns {
		if ws != nil {
			ws.CloseNow()
		}
	}
	return nil
}

// scrape reads the relay's gauges from /metrics.
func scrape(hc *http.Client, hostPort string) map[string]float64 {
	out := map[string]float64{}
	resp, err := hc.Get("https://" + hostPort + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}
