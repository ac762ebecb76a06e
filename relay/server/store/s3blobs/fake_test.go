package s3blobs_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeS3 is an in-memory S3 server for one bucket: GET (with Range), PUT
// (with If-Match and If-None-Match), DELETE and ListObjectsV2 with paging,
// path-style. It checks that requests carry a SigV4 Authorization header
// for the expected access key; the signature itself is checked against
// AWS's test vector in sigv4_test.go.
type fakeS3 struct {
	bucket    string
	accessKey string
	pageSize  int

	mu      sync.Mutex
	objects map[string][]byte
	mod     map[string]time.Time // when each object was written; nil: no LastModified
}

func etag(b []byte) string {
	s := sha256.Sum256(b)
	return `"` + hex.EncodeToString(s[:16]) + `"`
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+f.accessKey+"/") ||
		r.Header.Get("X-Amz-Date") == "" || r.Header.Get("X-Amz-Content-Sha256") == "" {
		http.Error(w, "AccessDenied", http.StatusForbidden)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	if bucket != f.bucket {
		http.Error(w, "NoSuchBucket", http.StatusNotFound)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, exists := f.objects[key]
	switch {
	case r.Method == http.MethodGet && key == "" && r.URL.Query().Get("list-type") == "2":
		f.list(w, r)
	case r.Method == http.MethodGet:
		if !exists {
			http.Error(w, "NoSuchKey", http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", etag(cur))
		if rng := r.Header.Get("Range"); rng != "" {
			var from, to int
			if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &from, &to); err != nil || from > to || to >= len(cur) {
				http.Error(w, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
				return
			}
			w.WriteHeader(http.StatusPartialContent)
			w.Write(cur[from : to+1])
			return
		}
		w.Write(cur)
	case r.Method == http.MethodPut:
		if r.Header.Get("If-None-Match") == "*" && exists {
			http.Error(w, "PreconditionFailed", http.StatusPreconditionFailed)
			return
		}
		if m := r.Header.Get("If-Match"); m != "" && (!exists || m != etag(cur)) {
			http.Error(w, "PreconditionFailed", http.StatusPreconditionFailed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.objects[key] = body
		if f.mod != nil {
			f.mod[key] = time.Now()
		}
		w.Header().Set("ETag", etag(body))
	case r.Method == http.MethodDelete:
		delete(f.objects, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "NotImplemented", http.StatusNotImplemented)
	}
}

func (f *fakeS3) list(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	start := 0
	if tok := r.URL.Query().Get("continuation-token"); tok != "" {
		start, _ = strconv.Atoi(tok)
	}
	type content struct {
		Key          string
		Size         int
		LastModified string `xml:",omitempty"`
	}
	var res struct {
		XMLName               xml.Name `xml:"ListBucketResult"`
		Contents              []content
		IsTruncated           bool
		NextContinuationToken string `xml:",omitempty"`
	}
	end := min(start+f.pageSize, len(keys))
	for _, k := range keys[start:end] {
		c := content{Key: k, Size: len(f.objects[k])}
		if t, ok := f.mod[k]; ok {
			c.LastModified = t.UTC().Format("2006-01-02T15:04:05.000Z")
		}
		res.Contents = append(res.Contents, c)
	}
	if end < len(keys) {
		res.IsTruncated, res.NextContinuationToken = true, strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(res)
}
