package server

// HubCounts reports the open connections and the connections' queue and
// log subscriptions the hub holds, for the external tests.
func HubCounts(s *Server) (conns, queueSubs, logSubs int) {
	s.mu.Lock()
	conns = len(s.conns)
	s.mu.Unlock()
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	for _, subs := range s.hub.logs {
		logSubs += len(subs)
	}
	return conns, len(s.hub.queues), logSubs
}
