package natswake

import (
	"sync"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/servicetest"
	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server"
)

// TestWakeAllAfterLastDrop: when a slow node drops wake-up notices, it
// wakes every local subscriber after the last one it dropped, not only at
// the first (which is all nats.go reports per slow-consumer episode).
func TestWakeAllAfterLastDrop(t *testing.T) {
	url, prefix := servicetest.NATS(t)
	defer func(m, b int, d time.Duration) { pendingMsgs, pendingBytes, dropCheck = m, b, d }(pendingMsgs, pendingBytes, dropCheck)
	pendingMsgs, pendingBytes, dropCheck = 2, 1<<20, 50*time.Millisecond

	slow, err := Dial(url, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	release := make(chan struct{})
	var mu sync.Mutex
	var wokeAt []int // the dropped count at each WakeAll
	if err := slow.Listen(func(w server.Wake) {
		if w.Kind == server.WakeAll {
			d, _ := slow.sub.Dropped()
			mu.Lock()
			wokeAt = append(wokeAt, d)
			mu.Unlock()
			return
		}
		<-release // a node too busy to keep up
	}); err != nil {
		t.Fatal(err)
	}
	defer close(release)

	fast, err := Dial(url, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	for i := range 50 {
		if err := fast.Publish(server.Wake{Kind: server.WakeQueue, Key: relay.ID{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, _ := slow.sub.Dropped()
		mu.Lock()
		woke := append([]int(nil), wokeAt...)
		mu.Unlock()
		if d > 0 && len(woke) > 0 && woke[len(woke)-1] == d {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notices dropped; every subscriber woken at drop counts %v, never after the last", d, woke)
		}
	}
}
