package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/client"
)

// latencies collects samples, and when each was taken.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
	at []time.Time
}

func (l *latencies) add(d time.Duration) {
	now := time.Now()
	l.mu.Lock()
	l.d = append(l.d, d)
	l.at = append(l.at, now)
	l.mu.Unlock()
}

// printTimeline prints, for each 100 ms of the run in which a sample took
// longer than slow, how many samples were taken, how many were slow and
// the longest: whether the tail is spread out or comes in stalls. Call it
// before quantiles, which sorts the samples.
func (l *latencies) printTimeline(slow time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.at) == 0 {
		return
	}
	type bucket struct {
		n, slow int
		max     time.Duration
	}
	t0 := l.at[0]
	var buckets []bucket
	for i, d := range l.d {
		b := int(l.at[i].Sub(t0) / (100 * time.Millisecond))
		for len(buckets) <= b {
			buckets = append(buckets, bucket{})
		}
		buckets[b].n++
		buckets[b].max = max(buckets[b].max, d)
		if d > slow {
			buckets[b].slow++
		}
	}
	fmt.Printf("timeline of end-to-end latency over %v (100 ms buckets with a sample over %v):\n", slow, slow)
	for i, b := range buckets {
		if b.slow > 0 {
			fmt.Printf("  t=%5.1fs  samples %4d  over %4d  max %v\n", float64(i)/10, b.n, b.slow, b.max.Round(100*time.Microsecond))
		}
	}
}

// sends counts acknowledged sends and their latency while measuring is
// set, and failures always.
type sends struct {
	lat       latencies
	ok        atomic.Int64
	failed    atomic.Int64
	measuring atomic.Bool
}

// record accounts for one send that started at start and ended with err.
func (s *sends) record(start time.Time, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.failed.Add(1)
		}
		return
	}
	if s.measuring.Load() {
		s.ok.Add(1)
		s.lat.add(time.Since(start))
	}
}

func (l *latencies) quantiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l.d)
	return l.d[len(l.d)/2], l.d[len(l.d)*99/100], len(l.d)
}

// runQueues: senders send 512-byte messages to recipients' queues; each
// send is acknowledged after fsync; recipients subscribe and acknowledge
// every message. End-to-end latency runs from the start of Send to the
// push at the recipient.
func runQueues(cfg config) error {
	addr, pid := cfg.addr, cfg.relayPID
	if addr == "" {
		p, err := startRelay(cfg)
		if err != nil {
			return err
		}
		defer p.stop()
		addr, pid = p.addr, p.cmd.Process.Pid
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration+2*time.Minute)
	defer cancel()
	raiseFDLimit(cfg.senders + cfg.recipients + 1000)

	dial := func() (*client.Client, error) {
		return client.Dial(ctx, addr, client.Options{PushBuffer: 4096})
	}
	type recipient struct {
		c *client.Client
		q client.Queue
	}
	recipients := make([]recipient, cfg.recipients)
	for i := range recipients {
		c, err := dial()
		if err != nil {
			return err
		}
		defer c.Close()
		q, err := c.CreateQueue(ctx, false)
		if err != nil {
			return err
		}
		if cfg.deliver {
			if err := c.Subscribe(ctx, q); err != nil {
				return err
			}
		}
		recipients[i] = recipient{c, q}
	}
	senders := make([]*client.Client, cfg.senders)
	for i := range senders {
		c, err := dial()
		if err != nil {
			return fmt.Errorf("sender %d: %w", i, err)
		}
		defer c.Close()
		senders[i] = c
	}

	var e2e latencies
	var received atomic.Int64
	var sent sends
	measuring := &sent.measuring
	work, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range recipients {
		if !cfg.deliver {
			break
		}
		wg.Add(1)
		// Acknowledge in batches, as a client does: one signed QueueAck
		// for every id received within -ack-delay (at most MaxAck).
		ids := make(chan relay.MsgID, 8192)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var batch []relay.MsgID
				select {
				case id := <-ids:
					batch = append(batch, id)
				case <-work.Done():
					return
				}
				deadline := time.NewTimer(cfg.ackDelay)
			more:
				for len(batch) < relay.MaxAck {
					select {
					case id := <-ids:
						batch = append(batch, id)
					case <-deadline.C:
						break more
					case <-work.Done():
						deadline.Stop()
						return
					}
				}
				deadline.Stop()
				go r.c.Ack(work, r.q, batch...)
			}
		}()
		go func() {
			defer wg.Done()
			for {
				var m relay.Message
				select {
				case m = <-r.c.Pushes():
				case <-work.Done():
					return
				}
				p, ok := m.(*relay.QueuePush)
				if !ok {
					continue
				}
				content, err := relay.Unpad(p.Message.Payload)
				if err == nil && len(content) >= 8 && measuring.Load() {
					start := time.Unix(0, int64(binary.BigEndian.Uint64(content)))
					e2e.add(time.Since(start))
					received.Add(1)
				}
				select {
				case ids <- p.Message.MsgID:
				case <-work.Done():
					return
				}
			}
		}()
	}
	// In latency mode each of the senders×window streams sends at
	// rate/(senders×window) per second.
	streams := len(senders) * cfg.window
	var interval time.Duration
	if cfg.mode == "latency" {
		interval = time.Duration(float64(time.Second) * float64(streams) / float64(cfg.rate))
	}
	for i, c := range senders {
		for w := range cfg.window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := recipients[i%len(recipients)]
				content := make([]byte, cfg.size)
				rand.Read(content)
				stream := i*cfg.window + w
				next := time.Now().Add(time.Duration(stream) * interval / time.Duration(streams))
				for n := 0; work.Err() == nil; n++ {
					if interval > 0 {
						if d := time.Until(next); d > 0 {
							select {
							case <-time.After(d):
							case <-work.Done():
								return
							}
						}
						next = next.Add(interval)
					}
					var id relay.MsgID
					binary.BigEndian.PutUint32(id[:], uint32(i))
					binary.BigEndian.PutUint32(id[4:], uint32(w))
					binary.BigEndian.PutUint64(id[8:], uint64(n))
					start := time.Now()
					binary.BigEndian.PutUint64(content, uint64(start.UnixNano()))
					sent.record(start, c.Send(work, r.q.SenderID, id, content, nil))
				}
			}()
		}
	}
	// Warm up, then measure.
	time.Sleep(2 * time.Second)
	cpu0, own0 := cpuTime(pid), cpuTime(os.Getpid())
	measuring.Store(true)
	t0 := time.Now()
	time.Sleep(cfg.duration)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1, own1 := cpuTime(pid), cpuTime(os.Getpid())
	stop()
	wg.Wait()

	if cfg.timeline > 0 {
		e2e.printTimeline(cfg.timeline)
	}
	s50, s99, _ := sent.lat.quantiles()
	e50, e99, en := e2e.quantiles()
	fmt.Printf("mode=%s senders=%d window=%d recipients=%d deliver=%v size=%d duration=%v\n", cfg.mode, cfg.senders, cfg.window, cfg.recipients, cfg.deliver, cfg.size, elapsed.Round(time.Millisecond))
	if cfg.mode == "latency" {
		fmt.Printf("target rate: %d msg/s\n", cfg.rate)
	}
	fmt.Printf("durable sends acknowledged: %.0f msg/s (%d in %v, %d failed)\n", float64(sent.ok.Load())/elapsed.Seconds(), sent.ok.Load(), elapsed.Round(time.Millisecond), sent.failed.Load())
	fmt.Printf("delivered: %.0f msg/s\n", float64(received.Load())/elapsed.Seconds())
	fmt.Printf("send→ack latency: p50 %v p99 %v\n", s50.Round(10*time.Microsecond), s99.Round(10*time.Microsecond))
	fmt.Printf("end-to-end latency (send→push): p50 %v p99 %v (%d samples)\n", e50.Round(10*time.Microsecond), e99.Round(10*time.Microsecond), en)
	if pid != 0 {
		fmt.Printf("relay CPU: %.2f cores (%v over %v)\n", (cpu1-cpu0).Seconds()/elapsed.Seconds(), cpu1-cpu0, elapsed.Round(time.Millisecond))
		if n := sent.ok.Load(); n > 0 {
			fmt.Printf("CPU per acknowledged message: relay %.0f µs, load generator %.0f µs (%.2f cores)\n",
				float64((cpu1-cpu0).Microseconds())/float64(n), float64((own1-own0).Microseconds())/float64(n), (own1-own0).Seconds()/elapsed.Seconds())
		}
		fmt.Printf("relay RSS: %.1f MiB\n", float64(rss(pid))/(1<<20))
	}
	return nil
}
