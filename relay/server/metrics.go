package server

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// metrics are counters exported in the Prometheus text format. They are few
// enough that writing the format by hand is cheaper than a dependency.
type metrics struct {
	connections    atomic.Int64
	parked         atomic.Int64
	connectionsAll atomic.Uint64
	requests       atomic.Uint64
	queueMessages  atomic.Uint64
	logEntries     atomic.Uint64
	blobBytes      atomic.Uint64
	pushes         atomic.Uint64
	slowClosed     atomic.Uint64
	expired        atomic.Uint64
	memoryTrims    atomic.Uint64
	trimmedParked  atomic.Int64
	errorsMu       sync.Mutex
	errors         map[relay.Code]uint64
	storeStats     func() store.Stats
}

func (m *metrics) countError(c relay.Code) {
	m.errorsMu.Lock()
	if m.errors == nil {
		m.errors = make(map[relay.Code]uint64)
	}
	m.errors[c]++
	m.errorsMu.Unlock()
}

func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m.write(w)
}

func (m *metrics) write(w io.Writer) {
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("tainik_relay_connections", "Open WebSocket connections.", m.connections.Load())
	gauge("tainik_relay_connections_parked", "Idle connections watched by the poller, with no read loop or buffer.", m.parked.Load())
	gauge("tainik_relay_goroutines", "Goroutines.", int64(runtime.NumGoroutine()))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("tainik_relay_heap_inuse_bytes", "Go heap in use.", int64(ms.HeapInuse))
	gauge("tainik_relay_stack_inuse_bytes", "Goroutine stacks in use.", int64(ms.StackInuse))
	counter("tainik_relay_connections_total", "WebSocket connections accepted.", m.connectionsAll.Load())
	counter("tainik_relay_requests_total", "Requests received.", m.requests.Load())
	counter("tainik_relay_queue_messages_total", "Queue messages stored.", m.queueMessages.Load())
	counter("tainik_relay_log_entries_total", "Group log entries appended.", m.logEntries.Load())
	counter("tainik_relay_blob_bytes_total", "Blob bytes stored.", m.blobBytes.Load())
	counter("tainik_relay_pushes_total", "Frames pushed to subscribers.", m.pushes.Load())
	counter("tainik_relay_slow_clients_closed_total", "Connections closed because the client did not read.", m.slowClosed.Load())
	counter("tainik_relay_expired_total", "Messages, tombstones of acknowledged messages, log entries and blobs expired.", m.expired.Load())
	gauge("tainik_relay_memory_trim_parked", "Parked connections at the last time free memory was returned to the system.", m.trimmedParked.Load())
	counter("tainik_relay_memory_trims_total", "Times free memory was returned to the system after connections parked.", m.memoryTrims.Load())
	if m.storeStats != nil {
		st := m.storeStats()
		counter("tainik_relay_store_commits_total", "Store transactions flushed to disk.", st.Commits)
		counter("tainik_relay_store_writes_total", "Store writes committed (several share one flush).", st.Writes)
		fmt.Fprintf(w, "# HELP tainik_relay_store_apply_seconds_total Time spent applying writes in transactions.\n# TYPE tainik_relay_store_apply_seconds_total counter\ntainik_relay_store_apply_seconds_total %.6f\n", st.ApplyTime.Seconds())
		fmt.Fprintf(w, "# HELP tainik_relay_store_commit_seconds_total Time spent committing (page writes and fsync).\n# TYPE tainik_relay_store_commit_seconds_total counter\ntainik_relay_store_commit_seconds_total %.6f\n", st.CommitTime.Seconds())
	}
	fmt.Fprintf(w, "# HELP tainik_relay_errors_total Error frames sent, by code.\n# TYPE tainik_relay_errors_total counter\n")
	m.errorsMu.Lock()
	codes := make([]int, 0, len(m.errors))
	for c := range m.errors {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "tainik_relay_errors_total{code=\"%d\"} %d\n", c, m.errors[relay.Code(c)])
	}
	m.errorsMu.Unlock()
}
