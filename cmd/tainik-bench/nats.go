package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// runNATS runs the relay's throughput workload against NATS JetStream: a
// work-queue stream with one subject per recipient; senders publish
// size-byte messages and wait for each PubAck; each recipient is a durable
// consumer of its subject that acknowledges what it received every
// -ack-delay (one ack per message, as a work-queue stream requires; the
// last of each batch waits for the server's answer), and may
// have at most 256 unacknowledged messages, like a relay subscription. A
// work-queue stream deletes a message once it is acknowledged, as the
// relay does. Durability per message depends on the server's jetstream
// sync_interval (set it to "always" for an fsync per write; see
// docs/performance.md). Unlike the relay, the connections are not TLS.
func runNATS(cfg config) error {
	if cfg.ackDelay <= 0 {
		return fmt.Errorf("-ack-delay must be positive in -mode nats")
	}
	nconns := cfg.natsConns
	if nconns <= 0 {
		nconns = cfg.senders
	}
	conns := make([]*nats.Conn, nconns)
	jss := make([]nats.JetStreamContext, nconns)
	for i := range conns {
		nc, err := nats.Connect(cfg.natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := nc.JetStream()
		if err != nil {
			return err
		}
		conns[i], jss[i] = nc, js
	}
	js := jss[0]
	js.DeleteStream("TAINIKBENCH")
	if _, err := js.AddStream(&nats.StreamConfig{
		Name:      "TAINIKBENCH",
		Subjects:  []string{"tainikbench.>"},
		Storage:   nats.FileStorage,
		Retention: nats.WorkQueuePolicy,
		MaxAge:    time.Hour,
	}); err != nil {
		return fmt.Errorf("creating stream: %w", err)
	}
	defer js.DeleteStream("TAINIKBENCH")

	var sent sends
	var e2e latencies
	var received atomic.Int64
	measuring := &sent.measuring
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup

	for r := range cfg.recipients {
		nc, err := nats.Connect(cfg.natsURL)
		if err != nil {
			return err
		}
		defer nc.Close()
		rjs, err := nc.JetStream()
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var batch []*nats.Msg
		_, err = rjs.Subscribe(fmt.Sprintf("tainikbench.%d", r), func(m *nats.Msg) {
			if len(m.Data) >= 8 && measuring.Load() {
				e2e.add(time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(m.Data)))))
				received.Add(1)
			}
			mu.Lock()
			batch = append(batch, m)
			mu.Unlock()
		}, nats.Durable(fmt.Sprintf("r%d", r)), nats.ManualAck(), nats.AckExplicit(), nats.MaxAckPending(256), nats.DeliverAll())
		if err != nil {
			return fmt.Errorf("consumer %d: %w", r, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(cfg.ackDelay)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				mu.Lock()
				ms := batch
				batch = nil
				mu.Unlock()
				// A work-queue stream takes only explicit acks, one
				// per message; the last waits for the server.
				for i, m := range ms {
					if i == len(ms)-1 {
						m.AckSync()
					} else {
						m.Ack()
					}
				}
			}
		}()
	}

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
				binary.BigEndian.PutUint64(msg, uint64(start.UnixNano()))
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
	e50, e99, en := e2e.quantiles()
	fmt.Printf("mode=nats url=%s publishers=%d connections=%d consumers=%d size=%d duration=%v\n", cfg.natsURL, cfg.senders, nconns, cfg.recipients, cfg.size, elapsed.Round(time.Millisecond))
	fmt.Printf("acknowledged publishes: %.0f msg/s (%d, %d failed)\n", float64(sent.ok.Load())/elapsed.Seconds(), sent.ok.Load(), sent.failed.Load())
	fmt.Printf("delivered: %.0f msg/s\n", float64(received.Load())/elapsed.Seconds())
	fmt.Printf("publish→ack latency: p50 %v p99 %v\n", p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	fmt.Printf("end-to-end latency (publish→delivery): p50 %v p99 %v (%d samples)\n", e50.Round(10*time.Microsecond), e99.Round(10*time.Microsecond), en)
	return nil
}
