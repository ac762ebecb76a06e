package server

import "testing"

func TestShouldTrim(t *testing.T) {
	for _, c := range []struct {
		parked, conns, trimmedAt int64
		want                     bool
	}{
		{0, 0, 0, false},
		{999, 999, 0, false},           // too few to be worth a collection
		{1000, 1000, 0, true},          // a first wave parked
		{1000, 2001, 0, false},         // most connections are busy
		{1000, 2000, 0, true},          // half parked is mostly idle enough
		{1500, 1500, 1000, false},      // not enough more since the last trim
		{2000, 2000, 1000, true},       // another wave
		{100000, 100000, 95000, false}, // less than a tenth more
		{100000, 100000, 90000, true},
	} {
		if got := shouldTrim(c.parked, c.conns, c.trimmedAt); got != c.want {
			t.Errorf("shouldTrim(parked %d, conns %d, trimmed at %d) = %v, want %v", c.parked, c.conns, c.trimmedAt, got, c.want)
		}
	}
}
