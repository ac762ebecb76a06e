// Command tainik-bench drives a Tainik relay over loopback and prints
// messages per second, end-to-end latency, the relay's CPU and its memory
// per idle connection; with -mode nats it runs the same workload (durable
// sends, delivery, batched acknowledgements that delete) against NATS
// JetStream for reference.
//
//	go run ./cmd/tainik-bench -mode throughput
//	go run ./cmd/tainik-bench -mode latency -rate 20000
//	go run ./cmd/tainik-bench -mode idle -idle 100000
//	go run ./cmd/tainik-bench -mode nats -nats nats://127.0.0.1:4223
//	go run ./cmd/tainik-bench -mode fsync -fsync-dir /var/lib/tainikd
//
// Without -addr it builds ./cmd/tainikd (run it from the repository root)
// and starts the relay on a fresh data directory, so it can measure the
// relay process. Every run stops by itself.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

type config struct {
	mode       string
	addr       string
	tainikd    string
	senders    int
	window     int
	store      string
	fsyncDir   string
	ackDelay   time.Duration
	timeline   time.Duration
	idleAfter  time.Duration
	recipients int
	deliver    bool
	size       int
	duration   time.Duration
	rate       int
	idle       int
	natsURL    string
	natsConns  int
	cpuProfile string
	relayPID   int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.mode, "mode", "throughput", "throughput, latency, idle, nats or fsync")
	flag.StringVar(&cfg.addr, "addr", "", "relay address (tainik://...); empty starts a relay")
	flag.StringVar(&cfg.tainikd, "tainikd", "", "tainikd binary to start; empty builds ./cmd/tainikd")
	flag.IntVar(&cfg.senders, "senders", 1000, "sending connections")
	flag.DurationVar(&cfg.ackDelay, "ack-delay", 20*time.Millisecond, "how long a recipient gathers message ids before one signed acknowledgement")
	flag.DurationVar(&cfg.timeline, "timeline", 0, "print when end-to-end latencies over this long happened, per 100 ms of the run (0: off)")
	flag.StringVar(&cfg.fsyncDir, "fsync-dir", os.TempDir(), "directory whose disk -mode fsync measures")
	flag.StringVar(&cfg.store, "store", "pebble", "the started relay's -store engine: pebble or bolt")
	flag.IntVar(&cfg.window, "window", 1, "sends each sender keeps in flight (pipelined on its one connection)")
	flag.DurationVar(&cfg.idleAfter, "idle-after", 10*time.Second, "the started relay's -idle-after; idle mode waits this long (plus 3 s) before measuring")
	flag.IntVar(&cfg.recipients, "recipients", 100, "receiving connections (one queue each)")
	flag.BoolVar(&cfg.deliver, "deliver", true, "recipients subscribe and acknowledge; false: they stay offline and only the durable sends are measured (a queue holds at most 10 000 messages, so give -recipients enough queues)")
	flag.IntVar(&cfg.size, "size", 512, "message content size in bytes (padded to the next bucket)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measuring time")
	flag.IntVar(&cfg.rate, "rate", 20000, "messages per second in latency mode")
	flag.IntVar(&cfg.idle, "idle", 1000, "idle connections in idle mode")
	flag.StringVar(&cfg.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server for -mode nats")
	flag.IntVar(&cfg.natsConns, "nats-conns", 0, "NATS connections shared by the publishers (default one per sender, as with the relay)")
	flag.StringVar(&cfg.cpuProfile, "relay-cpuprofile", "", "have the started relay write a CPU profile here")
	flag.IntVar(&cfg.relayPID, "relay-pid", 0, "with -addr: process id of the relay, to measure its CPU and memory")
	benchProfile := flag.String("cpuprofile", "", "write the bench's own CPU profile here")
	flag.Parse()
	if *benchProfile != "" {
		f, err := os.Create(*benchProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tainik-bench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var err error
	if cfg.size < 8 && (cfg.mode == "throughput" || cfg.mode == "latency" || cfg.mode == "nats") {
		fmt.Fprintln(os.Stderr, "tainik-bench: -size must be at least 8: each message carries its send time")
		pprof.StopCPUProfile()
		os.Exit(2)
	}
	switch cfg.mode {
	case "throughput", "latency":
		err = runQueues(cfg)
	case "idle":
		err = runIdle(cfg)
	case "nats":
		err = runNATS(cfg)
	case "fsync":
		err = runFsync(cfg)
	default:
		err = fmt.Errorf("unknown -mode %q", cfg.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tainik-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
