package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// runNATS runs the throughput workload against NATS JetStream: senders
// goroutines publish size-byte messages to a file-backed stream and wait
// for each PubAck. Durability per message depends on the server's
// jetstream sync_interval (set it to "always" for an fsync per write; see
// docs/performance.md).
func runNATS(cfg config) error {
	conns := make([]*nats.Conn, cfg.natsConns)
	jss := make([]nats.JetStreamContext, cfg.natsConns)
	for i := range conns {
		nc, err := nats.Connect(cfg.natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := nc.JetStream(nats.PublishAsyncMaxPending(4096))
		if err != nil {
			return err
		}
		conns[i], jss[i] = nc, js
	}
	js := jss[0]
	js.DeleteStream("TAINIKBENCH")
	if _, err := js.AddStream(&nats.StreamConfig{
		Name:     "TAINIKBENCH",
		Subjects: []string{"tainikbench.>"},
		Storage:  nats.FileStorage,
		MaxAge:   time.Hour,
	}); err != nil {
		return fmt.Errorf("creating stream: %w", err)
	}
	defer js.DeleteStream("TAINIKBENCH")

	var sent sends
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range cfg.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			js := jss[i%len(jss)]
			msg := make([]byte, cfg.size)
			rand.Read(msg)
			subj := fmt.Sprintf("tainikbench.%d", i%cfg.recipients)
			for ctx.Err() == nil {
				start := time.Now()
				_, err := js.Publish(subj, msg, nats.AckWait(10*time.Second))
				sent.record(start, err)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	sent.measuring.Store(true)
	t0 := time.Now()
	time.Sleep(cfg.duration)
	sent.measuring.Store(false)
	elapsed := time.Since(t0)
	stop()
	wg.Wait()
	p50, p99, _ := sent.lat.quantiles()
	fmt.Printf("mode=nats url=%s publishers=%d connections=%d size=%d duration=%v\n", cfg.natsURL, cfg.senders, cfg.natsConns, cfg.size, elapsed.Round(time.Millisecond))
	fmt.Printf("acknowledged publishes: %.0f msg/s (%d, %d failed)\n", float64(sent.ok.Load())/elapsed.Seconds(), sent.ok.Load(), sent.failed.Load())
	fmt.Printf("publish→ack latency: p50 %v p99 %v\n", p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	return nil
}
