package store_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

const (
	benchQueues     = 100
	benchGoroutines = 512
	benchPayload    = 1024
)

// BenchmarkAddMessage measures durable 1 KiB queue writes from 512
// goroutines, which share flushes through group commit.
func BenchmarkAddMessage(b *testing.B) {
	for _, engine := range store.Engines {
		b.Run(engine, func(b *testing.B) { benchQueue(b, engine, false) })
	}
}

// BenchmarkAddAck models the relay's queue workload: 512 goroutines over 100
// queues each add a 1 KiB message and then acknowledge it, as a recipient
// does soon after delivery, so messages live briefly and leave tombstones.
// msgs/s counts adds and acks.
func BenchmarkAddAck(b *testing.B) {
	for _, engine := range store.Engines {
		b.Run(engine, func(b *testing.B) { benchQueue(b, engine, true) })
	}
}

func benchQueue(b *testing.B, engine string, ack bool) {
	s, err := store.OpenEmbedded(engine, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	keys := make([]relay.ID, benchQueues)
	for i := range keys {
		var rid, sid relay.ID
		rand.Read(rid[:])
		rand.Read(sid[:])
		if err := s.CreateQueue(ctx, store.Queue{RecipientID: rid, SenderID: sid}); err != nil {
			b.Fatal(err)
		}
		q, err := s.QueueByRecipient(ctx, rid)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = q.Key
	}
	payload := make([]byte, benchPayload)
	var n, ops, latency atomic.Uint64
	before := s.Stats()
	cpu0 := cpuTime()
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.SetParallelism((benchGoroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			var id relay.MsgID
			binary.BigEndian.PutUint64(id[:], i)
			key := keys[i%benchQueues]
			t0 := time.Now()
			_, dup, err := s.AddMessage(ctx, key, store.Message{ID: id, Payload: payload, Expires: t0.Add(time.Hour)}, 1<<30)
			if err != nil || dup {
				b.Errorf("AddMessage: dup %v err %v", dup, err)
				return
			}
			t1 := time.Now()
			latency.Add(uint64(t1.Sub(t0)))
			ops.Add(1)
			if !ack {
				continue
			}
			if k, err := s.AckMessages(ctx, key, []relay.MsgID{id}, time.Now().Add(time.Hour)); err != nil || k != 1 {
				b.Errorf("AckMessages: %d, %v", k, err)
				return
			}
			latency.Add(uint64(time.Since(t1)))
			ops.Add(1)
		}
	})
	b.StopTimer()
	cpu := cpuTime() - cpu0
	el := b.Elapsed().Seconds()
	st := s.Stats()
	commits := float64(st.Commits - before.Commits)
	b.ReportMetric(float64(ops.Load())/el, "msgs/s")
	b.ReportMetric(float64(latency.Load())/float64(ops.Load())/1e3, "µs-latency/msg")
	// CPU per message (user and system, all threads) is less sensitive
	// than msgs/s to other load on the machine and to its disk.
	b.ReportMetric(float64(cpu.Microseconds())/float64(ops.Load()), "cpu-µs/msg")
	b.ReportMetric(commits/el, "commits/s")
	b.ReportMetric(float64(st.Writes-before.Writes)/commits, "writes/commit")
	b.ReportMetric(float64((st.CommitTime-before.CommitTime).Microseconds())/commits, "µs/commit")
	b.ReportMetric(float64((st.ApplyTime-before.ApplyTime).Microseconds())/commits, "µs-apply/commit")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
