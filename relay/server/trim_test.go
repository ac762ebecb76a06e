package server

import "testing"

func TestShouldTrim(t *testing.T) {
	const long, short = 2 * trimSettledEvery, trimSettledEvery / 2
	for _, c := range []struct {
		name string
		st   trimState
		want bool
	}{
		{"nothing parked", trimState{}, false},
		{"too few to be worth a collection", trimState{parked: 999, conns: 999, prevParked: 999, sinceTrim: long}, false},
		{"a first wave parking", trimState{parked: 1000, conns: 1000, sinceTrim: short}, true},
		{"most connections busy", trimState{parked: 1000, conns: 2001, sinceTrim: long}, false},
		{"half parked is idle enough", trimState{parked: 1000, conns: 2000, sinceTrim: short}, true},
		{"still parking, not enough more", trimState{parked: 1500, conns: 1500, prevParked: 1200, trimmedAt: 1000, sinceTrim: long}, false},
		{"another wave", trimState{parked: 2000, conns: 2000, prevParked: 1500, trimmedAt: 1000, sinceTrim: short}, true},
		{"less than a tenth more", trimState{parked: 100000, conns: 100000, prevParked: 99000, trimmedAt: 95000, sinceTrim: short}, false},
		{"a tenth more", trimState{parked: 100000, conns: 100000, prevParked: 99000, trimmedAt: 90000, sinceTrim: short}, true},
		{"settled after a trim mid-wave", trimState{parked: 1900, conns: 1900, prevParked: 1900, trimmedAt: 1000, sinceTrim: long}, true},
		{"settled, but trimmed lately", trimState{parked: 1900, conns: 1900, prevParked: 1900, trimmedAt: 1000, sinceTrim: short}, false},
		{"settled, too few since", trimState{parked: 1099, conns: 1099, prevParked: 1099, trimmedAt: 1000, sinceTrim: long}, false},
		{"settled, nothing since", trimState{parked: 5000, conns: 5000, prevParked: 5000, trimmedAt: 5000, sinceTrim: long}, false},
	} {
		if got := shouldTrim(c.st); got != c.want {
			t.Errorf("%s: shouldTrim(%+v) = %v, want %v", c.name, c.st, got, c.want)
		}
	}
}
