package s3blobs_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
	"github.com/tainik/tainik/relay/server/store/s3blobs"
)

// openS3 serves h on a loopback port and returns an s3blobs store on it,
// over an embedded store, closed when the test ends.
func openS3(t *testing.T, h http.Handler) *s3blobs.Store {
	t.Helper()
	return openS3Prefix(t, h, "")
}

func openS3Prefix(t *testing.T, h http.Handler, prefix string) *s3blobs.Store {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	meta, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := s3blobs.New(meta, s3blobs.Config{Endpoint: "http://" + ln.Addr().String(), Bucket: "tainik", AccessKey: "a", SecretKey: "b", Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (f *fakeS3) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.objects {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestOrphansSwept: objects no record names (left by a delete that failed
// after removing the record, a create that stopped half-way, a chunk that
// lost its record update) are deleted by Expire once they are an hour
// old, and a live blob's objects are not.
func TestOrphansSwept(t *testing.T) {
	fake := &fakeS3{bucket: "tainik", accessKey: "a", pageSize: 3, objects: map[string][]byte{}, mod: map[string]time.Time{}}
	s := openS3(t, fake)
	ctx := context.Background()
	up, down := relay.ID{1}, relay.ID{2}
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: up, DownloadToken: down, Size: 8, Expires: time.Now().Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChunk(ctx, up, 0, []byte("abcd"), nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChunk(ctx, up, 4, []byte("efgh"), nil, true); err != nil {
		t.Fatal(err)
	}
	liveKeys := fake.keys()
	if len(liveKeys) != 4 {
		t.Fatalf("a blob of two chunks is %d objects: %q", len(liveKeys), liveKeys)
	}
	dataPrefix := liveKeys[0][:strings.LastIndex(liveKeys[0], "/")+1] // data/<upload hash>/
	fake.mu.Lock()
	fake.objects["data/"+strings.Repeat("ab", 32)+"/0000000000000000-0000000000000001"] = []byte("orphan chunk")
	fake.objects["dl/"+strings.Repeat("cd", 32)] = []byte(strings.Repeat("ef", 32))
	fake.objects[dataPrefix+"0000000000000000-00000000000000ff"] = []byte("lost race")
	for k := range fake.objects {
		if _, ok := fake.mod[k]; !ok {
			fake.mod[k] = time.Now()
		}
	}
	fake.mu.Unlock()

	// Young orphans stay: they may be a write in progress.
	if _, err := s.Expire(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := fake.keys(); len(got) != 7 {
		t.Fatalf("the first sweep deleted young objects: %q left", got)
	}
	// Two hours on: the orphans go, the blob stays whole.
	n, err := s.Expire(ctx, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := fake.keys(); strings.Join(got, " ") != strings.Join(liveKeys, " ") || n != 3 {
		t.Fatalf("after the sweep (%d deleted): %q, want %q", n, got, liveKeys)
	}
	data, err := s.ReadBlob(ctx, down, 0, 8)
	if err != nil || string(data) != "abcdefgh" {
		t.Fatalf("ReadBlob after the sweep = %q, %v", data, err)
	}
	// The sweep runs at most once an hour.
	fake.mu.Lock()
	fake.objects["dl/"+strings.Repeat("12", 32)] = nil
	fake.mod["dl/"+strings.Repeat("12", 32)] = time.Now()
	fake.mu.Unlock()
	if _, err := s.Expire(ctx, time.Now().Add(2*time.Hour+30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(fake.keys()) != 5 {
		t.Fatal("a second sweep ran within the hour")
	}
}

// age makes every object look written d ago.
func (f *fakeS3) age(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.objects {
		f.mod[k] = time.Now().Add(-d)
	}
}

// liveBlob stores a complete 4-byte blob that expires in two days.
func liveBlob(t *testing.T, s *s3blobs.Store, up, down relay.ID) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateBlob(ctx, store.Blob{UploadToken: up, DownloadToken: down, Size: 4, Expires: time.Now().Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChunk(ctx, up, 0, []byte("abcd"), nil, true); err != nil {
		t.Fatal(err)
	}
}

// failMeta answers 503 SlowDown to GETs of records while on.
type failMeta struct {
	f  *fakeS3
	on atomic.Bool
}

func (h *failMeta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/meta/") && h.on.CompareAndSwap(true, false) {
		http.Error(w, "SlowDown", http.StatusServiceUnavailable)
		return
	}
	h.f.ServeHTTP(w, r)
}

// A record that cannot be read for the moment stops the sweep: it may
// name objects (its download name) that would look like orphans.
func TestSweepSkippedOnUnreadableRecord(t *testing.T) {
	fake := &fakeS3{bucket: "tainik", accessKey: "a", pageSize: 100, objects: map[string][]byte{}, mod: map[string]time.Time{}}
	h := &failMeta{f: fake}
	s := openS3(t, h)
	ctx := context.Background()
	liveBlob(t, s, relay.ID{1}, relay.ID{2})
	fake.age(2 * time.Hour)
	h.on.Store(true)
	if _, err := s.Expire(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlob(ctx, relay.ID{2}, 0, 4); err != nil {
		t.Fatalf("a live blob after a sweep that met one 503: %v (left: %q)", err, fake.keys())
	}
}

// tokenless pages listings as a ListObjects V1-style server does:
// IsTruncated without a NextContinuationToken.
type tokenless struct{ f *fakeS3 }

var tokenRE = regexp.MustCompile(`<NextContinuationToken>[^<]*</NextContinuationToken>`)

func (h tokenless) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
		rec := httptest.NewRecorder()
		h.f.ServeHTTP(rec, r)
		w.Write(tokenRE.ReplaceAll(rec.Body.Bytes(), nil))
		return
	}
	h.f.ServeHTTP(w, r)
}

// A listing cut short without a continuation token is an error, not a
// complete list: records past the first page would pass for absent and
// their blobs for orphans.
func TestTruncatedListingRefused(t *testing.T) {
	fake := &fakeS3{bucket: "tainik", accessKey: "a", pageSize: 1, objects: map[string][]byte{}, mod: map[string]time.Time{}}
	s := openS3(t, tokenless{fake})
	downs := []relay.ID{{2}, {4}, {6}}
	for i, d := range downs {
		liveBlob(t, s, relay.ID{byte(2*i + 1)}, d)
	}
	fake.age(2 * time.Hour)
	if _, err := s.Expire(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "continuation token") {
		t.Errorf("Expire over a tokenless truncated listing: %v", err)
	}
	for _, d := range downs {
		if _, err := s.ReadBlob(context.Background(), d, 0, 4); err != nil {
			t.Errorf("a live blob after the sweep: %v", err)
		}
	}
}

// The sweep deletes only keys this store writes: not another deployment's
// under a longer prefix, nor unrelated objects.
func TestSweepLeavesForeignObjects(t *testing.T) {
	fake := &fakeS3{bucket: "tainik", accessKey: "a", pageSize: 100, objects: map[string][]byte{}, mod: map[string]time.Time{}}
	root := openS3Prefix(t, fake, "")
	other := openS3Prefix(t, fake, "data/eu/")
	liveBlob(t, other, relay.ID{1}, relay.ID{2})
	fake.mu.Lock()
	fake.objects["data/report.csv"] = []byte("not ours")
	fake.objects["dl/notes.txt"] = []byte("not ours")
	fake.mu.Unlock()
	fake.age(2 * time.Hour)
	before := fake.keys()
	if _, err := root.Expire(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if after := fake.keys(); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("the sweep deleted foreign objects: %q left of %q", after, before)
	}
}
