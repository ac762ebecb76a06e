package s3blobs_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

// lossy applies the first conditional record PUT, then answers 500 as if
// the reply was lost (S3 documents that a 500 may follow a write that
// succeeded; a dropped connection or client timeout looks the same).
type lossy struct {
	f    *fakeS3
	done atomic.Bool
}

func (l *lossy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/meta/") && r.Header.Get("If-Match") != "" && l.done.CompareAndSwap(false, true) {
		rec := httptest.NewRecorder()
		l.f.ServeHTTP(rec, r)
		http.Error(w, "InternalError", http.StatusInternalServerError)
		return
	}
	l.f.ServeHTTP(w, r)
}

// TestPutChunkLostAnswer: when the bucket stores a blob's record but its
// answer is lost, the chunk the record names is not deleted, and the
// write counts as done.
func TestPutChunkLostAnswer(t *testing.T) {
	fake := &fakeS3{bucket: "tainik", accessKey: "a", pageSize: 100, objects: map[string][]byte{}}
	s := openS3(t, &lossy{f: fake})
	ctx := context.Background()
	up, down := relay.ID{1}, relay.ID{2}
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: up, DownloadToken: down, Size: 4, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChunk(ctx, up, 0, []byte("abcd"), nil, true); err != nil {
		t.Errorf("PutChunk whose record was stored: %v", err)
	}
	b, err := s.BlobByDownload(ctx, down)
	if err != nil {
		t.Fatal(err)
	}
	data, err := s.ReadBlob(ctx, down, 0, 4)
	if err != nil || string(data) != "abcd" {
		t.Fatalf("record says %d bytes complete=%v, but ReadBlob = %q, %v: PutChunk deleted the chunk its committed record lists", b.Length, b.Complete, data, err)
	}
}
