// Package server is the Tainik relay: the MLS delivery service of RFC 9750.
// It stores and forwards ciphertext in queues, group logs and blobs over
// WebSocket (protocol in package relay), orders each group's handshake
// messages, and learns as little as it can.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/ws"
)

// Config configures a relay. The zero value of each limit means its
// default.
type Config struct {
	// DataDir holds the store and the relay key.
	DataDir string
	// Store overrides the embedded store opened in DataDir.
	Store store.Store
	// Notifier carries wake-ups to the other nodes sharing Store; nil
	// for a relay that is the only node.
	Notifier Notifier
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// LogIPs adds client addresses to logs. Off by default.
	LogIPs bool
	// ACMEDomain, if set, gets a certificate for this domain from an ACME
	// CA (Let's Encrypt) instead of using the pinned self-signed one.
	ACMEDomain string
	// PublicHost is the host printed in the relay address when the relay
	// listens on an unspecified address.
	PublicHost string

	MessageTTL time.Duration // queue message lifetime; default 21 days
	// DedupWindow is how long the id of an acknowledged message is kept,
	// so that a sender's retry of it is recognised as a duplicate and not
	// delivered again; at most MessageTTL. Default 24 hours.
	DedupWindow      time.Duration
	LogRetention     time.Duration // group log entry lifetime; default 30 days
	BlobTTL          time.Duration // blob lifetime; default 7 days
	MaxBlobSize      uint64        // default 64 MiB
	MaxQueueMessages int           // default 10 000
	MaxSubscriptions int           // per connection; default 1024
	MaxInFlight      int           // requests in flight per connection; default 64
	OutboundFrames   int           // frames buffered per connection; default 64
	ContactRate      float64       // sends per second per contact address; default 1
	ContactBurst     int           // default 20
	ExpireInterval   time.Duration // default 1 minute
	WriteTimeout     time.Duration // how long a client may leave frames unread; default relay.WriteTimeout
	ReadTimeout      time.Duration // how long a client may take to finish a frame it started; default 30 s
	// IdleAfter is how long a connection must be quiet before it is
	// parked: its read loop ends and its buffer is freed until the client
	// sends again (Linux). Default 10 s.
	IdleAfter time.Duration
	// Engine is the embedded store engine used when Store is nil:
	// "pebble" (the default) or "bolt".
	Engine string
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MessageTTL, 21*24*time.Hour)
	def(&c.DedupWindow, 24*time.Hour)
	def(&c.LogRetention, 30*24*time.Hour)
	def(&c.BlobTTL, 7*24*time.Hour)
	def(&c.ExpireInterval, time.Minute)
	def(&c.WriteTimeout, relay.WriteTimeout)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.IdleAfter, 10*time.Second)
	if c.MaxBlobSize == 0 {
		c.MaxBlobSize = 64 << 20
	}
	if c.MaxQueueMessages == 0 {
		c.MaxQueueMessages = 10000
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = 1024
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.OutboundFrames == 0 {
		c.OutboundFrames = 64
	}
	if c.ContactRate == 0 {
		c.ContactRate = 1
	}
	if c.ContactBurst == 0 {
		c.ContactBurst = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a relay.
type Server struct {
	cfg         Config
	log         *slog.Logger
	store       store.Store
	ownStore    bool
	tls         *tls.Config
	fingerprint string
	metrics     metrics
	hub         hub
	notifier    Notifier
	limiter     contactLimiter

	// mu guards conns and draining. Lock order: Server.mu before conn.mu.
	mu       sync.Mutex
	conns    map[*conn]struct{}
	poller   *poller
	draining bool
	handlers sync.WaitGroup // requests being handled

	http     *http.Server
	stopOnce sync.Once
	stopped  chan struct{}
	expiryWG sync.WaitGroup
}

// check refuses settings that would make no sense: a negative duration,
// count or rate. Zero means the default. Each is named as tainikd's flag
// for it, where there is one.
func (c *Config) check() error {
	for _, st := range []struct {
		name     string
		negative bool
		value    any
	}{
		{"message TTL (-message-ttl)", c.MessageTTL < 0, c.MessageTTL},
		{"dedup window (-dedup-window)", c.DedupWindow < 0, c.DedupWindow},
		{"log retention (-log-retention)", c.LogRetention < 0, c.LogRetention},
		{"blob TTL (-blob-ttl)", c.BlobTTL < 0, c.BlobTTL},
		{"idle time before parking (-idle-after)", c.IdleAfter < 0, c.IdleAfter},
		{"expiry interval", c.ExpireInterval < 0, c.ExpireInterval},
		{"write timeout", c.WriteTimeout < 0, c.WriteTimeout},
		{"read timeout", c.ReadTimeout < 0, c.ReadTimeout},
		{"message limit per queue (-max-queue-messages)", c.MaxQueueMessages < 0, c.MaxQueueMessages},
		{"contact address rate (-contact-rate)", c.ContactRate < 0, c.ContactRate},
		{"contact address burst (-contact-burst)", c.ContactBurst < 0, c.ContactBurst},
		{"subscription limit per connection", c.MaxSubscriptions < 0, c.MaxSubscriptions},
		{"limit of requests in flight", c.MaxInFlight < 0, c.MaxInFlight},
		{"outbound frame limit", c.OutboundFrames < 0, c.OutboundFrames},
	} {
		if st.negative {
			return fmt.Errorf("relay: the %s is negative (%v): give a positive value, or 0 for the default", st.name, st.value)
		}
	}
	return nil
}

// New opens the store and the relay key and returns a relay ready to Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, conns: make(map[*conn]struct{}), stopped: make(chan struct{})}
	s.limiter = contactLimiter{rate: cfg.ContactRate, burst: float64(cfg.ContactBurst), buckets: make(map[relay.ID]*bucket)}
	s.hub = hub{queues: make(map[relay.ID]*queueSub), logs: make(map[relay.ID]map[*logSub]struct{}), logKeys: make(map[relay.ID]relay.ID), queueKeys: make(map[relay.ID]relay.ID)}
	s.notifier = cfg.Notifier
	if s.notifier == nil {
		s.notifier = localNotifier{}
	}
	cert, leaf, err := loadOrCreateCert(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.fingerprint = relay.Fingerprint(leaf)
	s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	if cfg.ACMEDomain != "" {
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(cfg.ACMEDomain),
			Cache:      autocert.DirCache(filepath.Join(cfg.DataDir, "acme")),
		}
		s.tls = &tls.Config{GetCertificate: m.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1", acme.ALPNProto}}
		s.fingerprint = ""
	}
	s.store = cfg.Store
	if s.store == nil {
		b, err := store.OpenEmbedded(cfg.Engine, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.store, s.ownStore = b, true
		s.metrics.storeStats = b.Stats
	} else {
		s.metrics.storeStats = storeStats(cfg.Store)
	}
	if err := s.notifier.Listen(s.wake); err != nil {
		if s.ownStore {
			s.store.Close()
		}
		return nil, fmt.Errorf("relay: listening for wake-ups: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(relay.Path, s.serveWS)
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.Handle("/metrics", &s.metrics)
	errLog := log.New(io.Discard, "", 0)
	if cfg.LogIPs {
		errLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	}
	// The http.Server's own error log names client addresses (TLS
	// handshake errors), so it is silenced unless LogIPs is set.
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	s.poller, err = newPoller(&s.metrics.parked)
	if err != nil {
		s.log.Warn("idle connections will not be parked", "err", err)
	}
	s.expiryWG.Add(2)
	go s.expireLoop()
	go s.trimLoop()
	return s, nil
}

// Fingerprint returns the relay key fingerprint clients pin; empty with
// ACME.
func (s *Server) Fingerprint() string { return s.fingerprint }

// Address returns the relay address for a listener address.
func (s *Server) Address(addr net.Addr) relay.Address {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if s.cfg.PublicHost != "" {
			host = s.cfg.PublicHost
		}
	}
	if s.cfg.ACMEDomain != "" {
		host = s.cfg.ACMEDomain
	}
	return relay.Address{Fingerprint: s.fingerprint, HostPort: net.JoinHostPort(host, port)}
}

// Serve accepts TLS connections on ln until Shutdown. It returns
// http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.http.Serve(tls.NewListener(ln, s.tls))
}

// Shutdown stops accepting connections and requests, waits for requests in
// flight (so every acknowledged write is on disk and answered), closes the
// connections and the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, errors.New("relay: shutdown: requests still in flight"))
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// In parallel: a close frame can wait behind a stalled write.
	var closing sync.WaitGroup
	for _, c := range conns {
		closing.Go(func() { c.closeWith(ws.StatusGoingAway, "relay shutting down") })
	}
	closed := make(chan struct{})
	go func() { closing.Wait(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		for _, c := range conns {
			c.ws.CloseNow()
		}
		err = errors.Join(err, errors.New("relay: shutdown: connections still closing"))
	}
	s.poller.close()
	s.stopOnce.Do(func() { close(s.stopped) })
	s.expiryWG.Wait()
	if s.ownStore {
		err = errors.Join(err, s.store.Close())
	}
	return err
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// maxSweeps bounds the expiry batches of one tick.
const maxSweeps = 100

func (s *Server) expireLoop() {
	defer s.expiryWG.Done()
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		// Each call deletes a bounded batch: sweep until none is left,
		// but at most maxSweeps batches a tick (on a shared store other
		// nodes' traffic keeps expiring), and not past Shutdown.
		for range maxSweeps {
			if isDone(s.stopped) {
				return
			}
			n, err := s.store.Expire(context.Background(), time.Now())
			if err != nil {
				s.log.Error("expiry failed", "err", err)
				break
			}
			s.metrics.expired.Add(uint64(n))
			if n == 0 {
				break
			}
		}
		s.limiter.sweep()
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	wc, err := ws.Accept(w, r, relay.Subprotocol, relay.MaxFrameSize)
	if err != nil {
		return
	}
	c := newConn(s, wc)
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		wc.Close(ws.StatusGoingAway, "relay shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.metrics.connections.Add(1)
	s.metrics.connectionsAll.Add(1)
	if s.cfg.LogIPs {
		s.log.Debug("connection opened", "remote", r.RemoteAddr)
	} else {
		s.log.Debug("connection opened")
	}
	// Serve on a fresh goroutine and let the HTTP handler's goroutine
	// end: its stack grew during the TLS handshake, and an idle
	// connection should not keep it.
	go c.serve()
}

// errorFor maps store errors to protocol errors.
func errorFor(err error) error {
	var ee *store.EpochError
	var oe *store.OffsetError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		if ee.Future {
			return &relay.Error{Code: relay.CodeFutureEpoch, Detail: ee.Current, Message: fmt.Sprintf("the log is at epoch %d", ee.Current)}
		}
		return &relay.Error{Code: relay.CodeStaleEpoch, Detail: ee.Current, Message: fmt.Sprintf("the log is at epoch %d: fetch and re-base", ee.Current)}
	case errors.As(err, &oe):
		return &relay.Error{Code: relay.CodeBadOffset, Detail: oe.Length, Message: fmt.Sprintf("stored length is %d", oe.Length)}
	case errors.Is(err, store.ErrNotFound):
		return relay.Errorf(relay.CodeNotFound, "not found")
	case errors.Is(err, store.ErrQuota):
		return relay.Errorf(relay.CodeQuotaExceeded, "queue is full")
	case errors.Is(err, store.ErrLocked):
		return relay.Errorf(relay.CodeQueueLocked, "queue is already locked")
	case errors.Is(err, store.ErrClosed):
		return relay.Errorf(relay.CodeShuttingDown, "relay is shutting down")
	}
	var re *relay.Error
	if errors.As(err, &re) {
		return re
	}
	return err
}

// storeStats finds the embedded store's counters in st, or inside the blob
// stores that wrap it (their Unwrap method); nil if there are none (the
// PostgreSQL store keeps no such counters: PostgreSQL has its own).
func storeStats(st store.Store) func() store.Stats {
	for st != nil {
		if e, ok := st.(interface{ Stats() store.Stats }); ok {
			return e.Stats
		}
		u, ok := st.(interface{ Unwrap() store.Store })
		if !ok {
			return nil
		}
		st = u.Unwrap()
	}
	return nil
}
