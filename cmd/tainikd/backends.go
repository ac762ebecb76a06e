package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tainik/tainik/relay/server"
	"github.com/tainik/tainik/relay/server/natswake"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/blobdir"
	"github.com/tainik/tainik/relay/server/store/postgres"
	"github.com/tainik/tainik/relay/server/store/s3blobs"
)

// Flags for running as one of several nodes. See docs/operations.md.
var (
	storeKind   = flag.String("store", "pebble", "store: pebble or bolt (embedded, in -data), or postgres (shared by several nodes)")
	postgresURL = flag.String("postgres", "", "PostgreSQL URL for -store postgres, e.g. postgres://tainik@db:5432/tainik?pool_max_conns=16")
	natsURL     = flag.String("nats", "", "NATS URL for wake-ups between nodes (required with -store postgres when more than one node runs)")
	natsPrefix  = flag.String("nats-prefix", "tainik", "NATS subject prefix; the same on every node of one relay")
	nodeID      = flag.String("node-id", "", "name of this node in logs")
	blobDir     = flag.String("blobs", "", "keep blobs in this directory (shared by the nodes), or in S3 with s3://bucket/prefix?endpoint=URL&region=R (keys from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), instead of the store")
)

// openBackends sets cfg.Store and cfg.Notifier from the flags and returns
// the function that closes them after the server has shut down.
func openBackends(cfg *server.Config) (func() error, error) {
	if *nodeID != "" {
		cfg.Logger = cfg.Logger.With("node", *nodeID)
	}
	var closers []func() error
	closeAll := func() error {
		var err error
		for i := len(closers) - 1; i >= 0; i-- {
			err = errors.Join(err, closers[i]())
		}
		return err
	}
	switch *storeKind {
	case "pebble", "bolt":
		if *postgresURL != "" {
			return nil, errors.New("-postgres needs -store postgres")
		}
		cfg.Engine = *storeKind
	case "postgres":
		if *postgresURL == "" {
			return nil, errors.New("-store postgres needs -postgres URL")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := postgres.Open(ctx, *postgresURL)
		if err != nil {
			return nil, err
		}
		cfg.Store = st
		closers = append(closers, st.Close)
	default:
		return nil, fmt.Errorf("unknown -store %q: want pebble, bolt or postgres", *storeKind)
	}
	if *blobDir != "" {
		meta := cfg.Store
		if meta == nil {
			b, err := store.OpenEmbedded(cfg.Engine, cfg.DataDir)
			if err != nil {
				return nil, err
			}
			meta = b
		}
		bs, err := openBlobs(meta, *blobDir)
		if err != nil {
			meta.Close()
			return nil, err
		}
		cfg.Store = bs
		closers = []func() error{bs.Close}
	}
	if *natsURL != "" {
		if *storeKind != "postgres" {
			closeAll()
			return nil, errors.New("-nats needs -store postgres: nodes must share a store")
		}
		n, err := natswake.Dial(*natsURL, *natsPrefix, cfg.Logger)
		if err != nil {
			closeAll()
			return nil, err
		}
		cfg.Notifier = n
		closers = append(closers, n.Close)
	}
	return closeAll, nil
}

// openBlobs wraps meta with the blob store -blobs names.
func openBlobs(meta store.Store, loc string) (store.Store, error) {
	if !strings.HasPrefix(loc, "s3://") {
		return blobdir.New(meta, loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("-blobs: %w", err)
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	endpoint := u.Query().Get("endpoint")
	if endpoint == "" {
		return nil, errors.New("-blobs s3://... needs ?endpoint=https://host[:port]")
	}
	return s3blobs.New(meta, s3blobs.Config{
		Endpoint:  endpoint,
		Bucket:    u.Host,
		Prefix:    prefix,
		Region:    u.Query().Get("region"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
	})
}
