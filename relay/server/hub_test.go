package server

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
)

func testMsgID(n int) relay.MsgID {
	var id relay.MsgID
	binary.BigEndian.PutUint64(id[:], uint64(n))
	return id
}

// TestAckedEarlyBounded: a client that acknowledges ids it was never
// pushed cannot make its subscription remember more than maxAckedEarly of
// them; the newest are kept, an id added again survives the eviction of
// its older slot, and an id counts only until its time.
func TestAckedEarlyBounded(t *testing.T) {
	sub := &queueSub{}
	now := time.Now()
	until := now.Add(time.Minute)
	const n = 5*maxAckedEarly + 7
	for i := range n {
		sub.ackedEarlyAdd(testMsgID(i), until)
	}
	if len(sub.ackedEarly) != maxAckedEarly || len(sub.ackedRing) != maxAckedEarly {
		t.Fatalf("remembers %d ids in a ring of %d, want %d", len(sub.ackedEarly), len(sub.ackedRing), maxAckedEarly)
	}
	for i := range n {
		_, ok := sub.ackedEarly[testMsgID(i)]
		if want := i >= n-maxAckedEarly; ok != want {
			t.Fatalf("id %d remembered %v, want %v", i, ok, want)
		}
	}

	// The oldest id now is n-maxAckedEarly; added again, it outlives
	// its first slot.
	again := testMsgID(n - maxAckedEarly)
	sub.ackedEarlyAdd(again, until.Add(time.Second))
	sub.ackedEarlyAdd(testMsgID(n), until)
	if !sub.ackedEarlyTake(again, now) {
		t.Error("an id added again was forgotten with its older slot")
	}
	if sub.ackedEarlyTake(again, now) {
		t.Error("an id counts twice")
	}
	if len(sub.ackedEarly) > maxAckedEarly {
		t.Errorf("remembers %d ids, more than %d", len(sub.ackedEarly), maxAckedEarly)
	}

	// Past its time an early acknowledgement no longer counts.
	last := testMsgID(n)
	if sub.ackedEarlyTake(last, until) {
		t.Error("an early acknowledgement counted past its time")
	}
}
