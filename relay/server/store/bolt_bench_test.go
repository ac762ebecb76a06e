package store_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// BenchmarkAddMessage measures durable 1 KiB queue writes from many
// goroutines, which share flushes through group commit.
func BenchmarkAddMessage(b *testing.B) {
	s, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const queues = 100
	keys := make([]relay.ID, queues)
	for i := range keys {
		var rid, sid relay.ID
		rand.Read(rid[:])
		rand.Read(sid[:])
		s.CreateQueue(ctx, store.Queue{RecipientID: rid, SenderID: sid})
		q, _ := s.QueueByRecipient(ctx, rid)
		keys[i] = q.Key
	}
	payload := make([]byte, 1024)
	var n atomic.Uint64
	b.SetBytes(1024)
	b.ReportAllocs()
	b.SetParallelism(256)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			var id relay.MsgID
			binary.BigEndian.PutUint64(id[:], i)
			if _, _, err := s.AddMessage(ctx, keys[i%queues], store.Message{ID: id, Payload: payload, Expires: time.Now().Add(time.Hour)}, 1<<30); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Writes)/float64(st.Commits), "writes/commit")
	b.ReportMetric(float64(st.CommitTime.Microseconds())/float64(st.Commits), "µs/commit")
	b.ReportMetric(float64(st.ApplyTime.Microseconds())/float64(st.Commits), "µs-apply/commit")
}
