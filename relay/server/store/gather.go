package store

// gather is the start of a group commit, for the engines' writers: it
// waits for the first write on ops and takes what else is queued behind
// it, up to max, into buf (reused). After done is closed it still drains
// what was queued before, and returns false once ops is empty.
func gather[T any](ops <-chan T, done <-chan struct{}, buf []T, max int) ([]T, bool) {
	var first T
	select {
	case first = <-ops:
	case <-done:
		select {
		case first = <-ops:
		default:
			return buf, false
		}
	}
	buf = append(buf[:0], first)
	for len(buf) < max {
		select {
		case o := <-ops:
			buf = append(buf, o)
		default:
			return buf, true
		}
	}
	return buf, true
}
