package server

import (
	"runtime/debug"
	"time"
)

// trimEvery is how often the relay checks whether to return free memory to
// the operating system.
const trimEvery = 10 * time.Second

// trimMinParked is the fewest parked connections that make returning
// memory worth a collection.
const trimMinParked = 1000

// shouldTrim says whether to return free memory now: when most open
// connections are parked (the relay is mostly idle) and at least
// trimMinParked more have parked since the last time it did, or since
// the parked count last fell. Connections that go quiet free what their
// read loops and handshakes used, but the Go runtime keeps freed memory
// for reuse and gives it back to the system only slowly; a relay holding
// many idle connections would otherwise keep the peak of the burst that
// opened them.
func shouldTrim(parked, conns, trimmedAt int64) bool {
	return parked >= trimMinParked && 2*parked >= conns && parked-trimmedAt >= max(trimMinParked, trimmedAt/10)
}

// trimLoop returns free memory to the system after waves of connections
// have parked (see shouldTrim).
func (s *Server) trimLoop() {
	defer s.expiryWG.Done()
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	var trimmedAt int64
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		parked := s.metrics.parked.Load()
		if parked < trimmedAt {
			trimmedAt = parked
		}
		if !shouldTrim(parked, s.metrics.connections.Load(), trimmedAt) {
			continue
		}
		t0 := time.Now()
		debug.FreeOSMemory()
		s.metrics.memoryTrims.Add(1)
		s.log.Debug("returned free memory to the system", "parked", parked, "took", time.Since(t0))
		trimmedAt = parked
	}
}
