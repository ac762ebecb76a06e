package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"

	"github.com/tainik/tainik/relay"
)

// Blob holds a blob's two capabilities. The uploader keeps UploadToken to
// resume; DownloadToken goes to readers inside an MLS message.
type Blob struct {
	UploadToken   relay.ID
	DownloadToken relay.ID
	Size          uint64
}

// CreateBlob starts an upload of size bytes with the given SHA-256.
func (c *Client) CreateBlob(ctx context.Context, size uint64, digest [32]byte) (Blob, error) {
	r, err := expect[*relay.BlobCreated](c.do(ctx, func([]byte) relay.Message {
		return &relay.BlobCreate{Size: size, Digest: digest}
	}))
	if err != nil {
		return Blob{}, err
	}
	return Blob{UploadToken: r.UploadToken, DownloadToken: r.DownloadToken, Size: size}, nil
}

// BlobStatus reports how much of an upload the relay holds.
func (c *Client) BlobStatus(ctx context.Context, b Blob) (*relay.BlobStatus, error) {
	return expect[*relay.BlobStatus](c.do(ctx, func([]byte) relay.Message {
		return &relay.BlobStat{UploadToken: b.UploadToken}
	}))
}

// PutChunk uploads data at offset.
func (c *Client) PutChunk(ctx context.Context, b Blob, offset uint64, data []byte) (*relay.BlobStatus, error) {
	return expect[*relay.BlobStatus](c.do(ctx, func([]byte) relay.Message {
		return &relay.BlobPut{UploadToken: b.UploadToken, Offset: offset, Data: data}
	}))
}

// Upload uploads data (already encrypted by the caller), resuming from
// what the relay holds if b was started before. Pass a zero Blob to start.
func (c *Client) Upload(ctx context.Context, b Blob, data []byte) (Blob, error) {
	if len(data) == 0 {
		return b, relay.Errorf(relay.CodeBadRequest, "nothing to upload: a blob holds at least one byte")
	}
	if b != (Blob{}) && b.Size != 0 && b.Size != uint64(len(data)) {
		return b, relay.Errorf(relay.CodeBadRequest, "resuming an upload of %d bytes with %d bytes of data", b.Size, len(data))
	}
	var off uint64
	if b == (Blob{}) {
		var err error
		if b, err = c.CreateBlob(ctx, uint64(len(data)), sha256.Sum256(data)); err != nil {
			return Blob{}, err
		}
	} else {
		st, err := c.BlobStatus(ctx, b)
		if err != nil {
			return b, err
		}
		off = st.Length
	}
	for off < uint64(len(data)) {
		end := min(off+relay.MaxChunk, uint64(len(data)))
		st, err := c.PutChunk(ctx, b, off, data[off:end])
		if err != nil {
			return b, err
		}
		off = st.Length
	}
	return b, nil
}

// Download reads a complete blob by its download capability. It checks
// that the relay's answers agree on the blob's size and add up to it; the
// content is the uploader's to check (the relay cannot read it: it is
// encrypted, and its digest travels inside MLS).
func (c *Client) Download(ctx context.Context, token relay.ID) ([]byte, error) {
	return c.DownloadAtMost(ctx, token, math.MaxUint64)
}

// DownloadAtMost is Download for a blob the caller knows to be at most max
// bytes: a larger size, as the relay states it, fails the download before
// the blob is read (a relay could otherwise make the client hold
// whatever it sends).
func (c *Client) DownloadAtMost(ctx context.Context, token relay.ID, max uint64) ([]byte, error) {
	var out []byte
	var size uint64
	for first := true; ; first = false {
		r, err := expect[*relay.BlobData](c.do(ctx, func([]byte) relay.Message {
			return &relay.BlobGet{DownloadToken: token, Offset: uint64(len(out)), Max: relay.MaxChunk}
		}))
		if err != nil {
			return nil, err
		}
		if first {
			size = r.Size
			if size > max {
				return nil, fmt.Errorf("relay: the blob is %d bytes, more than the %d expected", size, max)
			}
		} else if r.Size != size {
			return nil, fmt.Errorf("relay: blob size changed from %d to %d during the download", size, r.Size)
		}
		if uint64(len(out))+uint64(len(r.Data)) > size {
			return nil, fmt.Errorf("relay: the relay sent more than the blob's %d bytes", size)
		}
		out = append(out, r.Data...)
		if uint64(len(out)) == size {
			return out, nil
		}
		if len(r.Data) == 0 {
			return nil, errors.New("relay: blob ended early")
		}
	}
}
