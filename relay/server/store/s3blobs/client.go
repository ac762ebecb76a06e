package s3blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client is the handful of S3 calls the blob store needs, with path-style
// addressing (endpoint/bucket/key), which every S3-compatible server
// accepts.
type client struct {
	http     *http.Client
	endpoint *url.URL
	bucket   string
	creds    credentials
}

var (
	errNoKey        = errors.New("s3blobs: no such key")
	errPrecondition = errors.New("s3blobs: precondition failed")
)

func (c *client) url(key string, query url.Values) *url.URL {
	u := *c.endpoint
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + c.bucket
	if key != "" {
		u.Path += "/" + key
	}
	u.RawQuery = query.Encode()
	return &u
}

// do sends a signed request. header adds headers (If-Match, Range...).
func (c *client) do(ctx context.Context, method, key string, query url.Values, body []byte, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(key, query).String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	ph := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", ph)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c.creds.sign(req, ph, time.Now())
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("s3blobs: %s %s: %w", method, key, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, errNoKey
	case resp.StatusCode == http.StatusPreconditionFailed:
		resp.Body.Close()
		return nil, errPrecondition
	case resp.StatusCode >= 300:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("s3blobs: %s %s: %s: %s", method, key, resp.Status, bytes.TrimSpace(msg))
	}
	return resp, nil
}

// get returns an object and its ETag. rng is an HTTP Range value or "".
func (c *client) get(ctx context.Context, key, rng string) ([]byte, string, error) {
	h := map[string]string{}
	if rng != "" {
		h["Range"] = rng
	}
	resp, err := c.do(ctx, http.MethodGet, key, nil, nil, h)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("s3blobs: GET %s: %w", key, err)
	}
	return b, resp.Header.Get("ETag"), nil
}

// put writes an object. ifMatch is an ETag the current object must have,
// "*" with ifNoneMatch for create-only, or "" for unconditional.
func (c *client) put(ctx context.Context, key string, body []byte, ifMatch, ifNoneMatch string) error {
	h := map[string]string{}
	if ifMatch != "" {
		h["If-Match"] = ifMatch
	}
	if ifNoneMatch != "" {
		h["If-None-Match"] = ifNoneMatch
	}
	resp, err := c.do(ctx, http.MethodPut, key, nil, body, h)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (c *client) delete(ctx context.Context, key string) error {
	resp, err := c.do(ctx, http.MethodDelete, key, nil, nil, nil)
	if errors.Is(err, errNoKey) {
		return nil
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

type object struct {
	Key          string    `xml:"Key"`
	Size         int64     `xml:"Size"`
	LastModified time.Time `xml:"LastModified"` // zero if the server sent none
}

// list returns every object under prefix, in key order, following
// continuation tokens.
func (c *client) list(ctx context.Context, prefix string) ([]object, error) {
	var out []object
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {prefix}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		resp, err := c.do(ctx, http.MethodGet, "", q, nil, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Contents              []object `xml:"Contents"`
			IsTruncated           bool     `xml:"IsTruncated"`
			NextContinuationToken string   `xml:"NextContinuationToken"`
		}
		err = xml.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("s3blobs: listing %s: %w", prefix, err)
		}
		out = append(out, page.Contents...)
		if !page.IsTruncated {
			return out, nil
		}
		if page.NextContinuationToken == "" {
			// A server that pages ListObjects V1-style: the rest
			// cannot be fetched, and a partial list must not pass
			// for the whole (the orphan sweep would delete what it
			// did not see).
			return nil, fmt.Errorf("s3blobs: listing %s was cut short without a continuation token (the server must support ListObjectsV2)", prefix)
		}
		token = page.NextContinuationToken
	}
}
