// Command tainikd runs a Tainik relay.
//
//	go run ./cmd/tainikd -listen 127.0.0.1:7443 -data ./tainikd-data
//
// It prints the relay address, tainik://<fingerprint>@host:port, that
// clients pin. SIGTERM or SIGINT stops accepting, drains requests in
// flight and flushes the store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/server/store"
)

func main() {
	privateFiles()
	var cfg server.Config
	listen := flag.String("listen", "127.0.0.1:7443", "address to listen on (host:port)")
	flag.StringVar(&cfg.DataDir, "data", "./tainikd-data", "data directory (store and relay key)")
	flag.BoolVar(&cfg.LogIPs, "log-ips", false, "include client IP addresses in logs")
	flag.StringVar(&cfg.ACMEDomain, "acme-domain", "", "get a certificate for this public domain by ACME (Let's Encrypt) instead of the pinned key")
	flag.StringVar(&cfg.PublicHost, "public-host", "", "host to print in the relay address when listening on all interfaces")
	flag.DurationVar(&cfg.MessageTTL, "message-ttl", 0, "queue message lifetime (default 504h)")
	flag.DurationVar(&cfg.DedupWindow, "dedup-window", 0, "how long after an acknowledgement a sender's retry of the same message id is still recognised and not delivered again (default 24h)")
	flag.DurationVar(&cfg.LogRetention, "log-retention", 0, "group log entry lifetime (default 720h)")
	flag.DurationVar(&cfg.BlobTTL, "blob-ttl", 0, "blob lifetime (default 168h)")
	flag.Uint64Var(&cfg.MaxBlobSize, "max-blob-size", 0, "largest blob in bytes (default 64 MiB)")
	flag.IntVar(&cfg.MaxQueueMessages, "max-queue-messages", 0, "messages a queue holds at most (default 10000)")
	flag.Float64Var(&cfg.ContactRate, "contact-rate", 0, "sends per second per contact address (default 1)")
	flag.IntVar(&cfg.ContactBurst, "contact-burst", 0, "burst of sends per contact address (default 20)")
	flag.DurationVar(&cfg.IdleAfter, "idle-after", 0, "quiet time after which a connection's reader and buffer are released until it sends again (default 10s)")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn, error")
	drain := flag.Duration("drain-timeout", 10*time.Second, "how long SIGTERM waits for requests in flight")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until shutdown")
	debugListen := flag.String("debug-listen", "", "serve Go's profiling endpoints (/debug/pprof/) on this address; keep it on localhost")
	flag.Parse()

	if *debugListen != "" {
		// A separate listener and mux, so profiling never shares the
		// relay's public port.
		dln, err := net.Listen("tcp", *debugListen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tainikd: -debug-listen:", err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		go http.Serve(dln, mux)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tainikd:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "tainikd: bad -log-level:", err)
		os.Exit(2)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	closeBackends, err := openBackends(&cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tainikd:", err)
		os.Exit(1)
	}
	srv, err := server.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tainikd:", err)
		var ee *store.EngineError
		if errors.As(err, &ee) {
			fmt.Fprintf(os.Stderr, "tainikd: to keep using it, run with -store %s\n", ee.Found)
		}
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tainikd:", err)
		os.Exit(1)
	}
	fmt.Println(srv.Address(ln.Addr()))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		cfg.Logger.Info("draining", "signal", s.String())
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "tainikd:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tainikd:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	if err := closeBackends(); err != nil {
		fmt.Fprintln(os.Stderr, "tainikd:", err)
		os.Exit(1)
	}
	cfg.Logger.Info("stopped")
}
