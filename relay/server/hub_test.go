package server

import (
	"encoding/binary"
	"testing"

	"github.com/tainik/tainik/relay"
)

// TestAckedEarlyBounded: a client that acknowledges ids it was never
// pushed cannot make its subscription remember more than maxAckedEarly of
// them; the newest are kept.
func TestAckedEarlyBounded(t *testing.T) {
	id := func(n int) relay.MsgID {
		var id relay.MsgID
		binary.BigEndian.PutUint64(id[:], uint64(n))
		return id
	}
	sub := &queueSub{}
	const n = 5*maxAckedEarly + 7
	for i := range n {
		sub.ackedEarlyAdd(id(i))
		sub.ackedEarlyAdd(id(i)) // twice: still one entry
	}
	if len(sub.ackedEarly) != maxAckedEarly || len(sub.ackedRing) != maxAckedEarly {
		t.Fatalf("remembers %d ids in a ring of %d, want %d", len(sub.ackedEarly), len(sub.ackedRing), maxAckedEarly)
	}
	for i := range n {
		_, ok := sub.ackedEarly[id(i)]
		if want := i >= n-maxAckedEarly; ok != want {
			t.Fatalf("id %d remembered %v, want %v", i, ok, want)
		}
	}
}
