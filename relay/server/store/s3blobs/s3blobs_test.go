package s3blobs_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"

	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/s3blobs"
	"github.com/tainik/tainik/relay/server/store/storetest"
)

// TestS3Blobs runs the store suite on the embedded store with its blobs
// in an in-process fake S3 (no S3 server is reachable from the test
// machines). The fake pages listings by two keys to exercise paging.
func TestS3Blobs(t *testing.T) {
	fake := &fakeS3{bucket: "tainik", accessKey: "test-access", pageSize: 2, objects: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fake}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dir := t.TempDir()
		open := func() store.Store {
			meta, err := store.OpenBolt(dir)
			if err != nil {
				t.Fatal(err)
			}
			s, err := s3blobs.New(meta, s3blobs.Config{
				Endpoint: "http://" + ln.Addr().String(), Bucket: "tainik", Prefix: t.Name() + "/",
				AccessKey: "test-access", SecretKey: "test-secret",
			})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		cur := open()
		t.Cleanup(func() { cur.Close() })
		return cur, func() store.Store {
			if err := cur.Close(); err != nil {
				t.Fatal(err)
			}
			cur = open()
			return cur
		}
	})
}

// TestConcurrentChunks has several writers (as on several nodes) put the
// same offset of one upload at once: the conditional record update lets
// exactly one succeed.
func TestConcurrentChunks(t *testing.T) {
	s := openS3(t, &fakeS3{bucket: "tainik", accessKey: "a", pageSize: 1000, objects: map[string][]byte{}})
	ctx := context.Background()
	up := relay.ID{1}
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: up, DownloadToken: relay.ID{2}, Size: 100, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.PutChunk(ctx, up, 0, bytes.Repeat([]byte{byte(i)}, 10), nil, false) }()
	}
	won := 0
	for range n {
		err := <-errs
		var oe *store.OffsetError
		switch {
		case err == nil:
			won++
		case errors.As(err, &oe) && oe.Length == 10:
		default:
			t.Errorf("PutChunk: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers succeeded at one offset, want 1", won)
	}
	b, err := s.BlobByUpload(ctx, up)
	if err != nil || b.Length != 10 {
		t.Fatalf("after the race: %+v %v", b, err)
	}
	// The bytes are the winner's alone: a loser never overwrote them.
	got, err := s.ReadBlob(ctx, relay.ID{2}, 0, 100)
	if err != nil || len(got) != 10 || !bytes.Equal(got, bytes.Repeat(got[:1], 10)) {
		t.Fatalf("ReadBlob after the race: %x %v", got, err)
	}
}
