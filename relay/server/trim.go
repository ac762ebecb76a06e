package server

import (
	"runtime"
	"runtime/debug"
	"time"
)

// trimEvery is how often the relay checks whether to return free memory to
// the operating system.
const trimEvery = 10 * time.Second

// trimMinParked is the fewest parked connections that make returning
// memory worth a collection.
const trimMinParked = 1000

// trimSettledEvery bounds how often the relay trims for a wave that has
// settled (see shouldTrim).
const trimSettledEvery = time.Minute

// trimState is what shouldTrim decides from.
type trimState struct {
	parked, conns int64 // now
	prevParked    int64 // at the previous check
	trimmedAt     int64 // parked at the last trim, or its lowest since
	sinceTrim     time.Duration
}

// shouldTrim says whether to return free memory now. Only when most open
// connections are parked (the relay is mostly idle), and then
//   - while a wave of connections is parking: once at least
//     trimMinParked more (and a tenth more) have parked since the last
//     trim, or since the parked count last fell;
//   - when the wave has settled (nothing parked since the previous
//     check), for what parked since the last trim, if a tenth of
//     trimMinParked did and no trim ran in the last trimSettledEvery.
//
// Connections that go quiet free what their read loops and handshakes
// used, but the Go runtime keeps freed memory for reuse and gives it back
// to the system only slowly; a relay holding many idle connections would
// otherwise keep the peak of the burst that opened them.
func shouldTrim(st trimState) bool {
	if st.parked < trimMinParked || 2*st.parked < st.conns {
		return false
	}
	grew := st.parked - st.trimmedAt
	if grew >= max(trimMinParked, st.trimmedAt/10) {
		return true
	}
	return st.parked == st.prevParked && grew >= trimMinParked/10 && st.sinceTrim >= trimSettledEvery
}

// trimLoop returns free memory to the system after waves of connections
// have parked (see shouldTrim).
func (s *Server) trimLoop() {
	defer s.expiryWG.Done()
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	st := trimState{}
	lastTrim := time.Now().Add(-trimSettledEvery)
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		st.prevParked, st.parked = st.parked, s.metrics.parked.Load()
		st.conns = s.metrics.connections.Load()
		st.trimmedAt = min(st.trimmedAt, st.parked)
		st.sinceTrim = time.Since(lastTrim)
		if !shouldTrim(st) {
			continue
		}
		t0 := time.Now()
		// The first collection moves pooled buffers (the read loops'
		// of the connections that just parked) to the pools' victim
		// caches; the one in FreeOSMemory frees them, then returns
		// the memory.
		runtime.GC()
		debug.FreeOSMemory()
		s.metrics.memoryTrims.Add(1)
		s.metrics.trimmedParked.Store(st.parked)
		s.log.Debug("returned free memory to the system", "parked", st.parked, "took", time.Since(t0))
		st.trimmedAt, lastTrim = st.parked, time.Now()
	}
}
