package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"errors"
	"time"

	"github.com/tainik/tainik/relay"
	"github.com/tainik/tainik/relay/server/store"
)

func (c *conn) blobCreate(ctx context.Context, m *relay.BlobCreate) (relay.Message, error) {
	if m.Size == 0 || m.Size > c.s.cfg.MaxBlobSize {
		return nil, relay.Errorf(relay.CodeTooLarge, "blob size must be between 1 and %d bytes", c.s.cfg.MaxBlobSize)
	}
	st, err := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := store.Blob{UploadToken: newID(), DownloadToken: newID(), Size: m.Size, Digest: m.Digest, HashState: st, Expires: time.Now().Add(c.s.cfg.BlobTTL)}
	if err := c.s.store.CreateBlob(ctx, b); err != nil {
		return nil, err
	}
	return &relay.BlobCreated{UploadToken: b.UploadToken, DownloadToken: b.DownloadToken}, nil
}

// blobPut appends a chunk. The SHA-256 state is kept with the blob so an
// interrupted upload resumes where it stopped and the digest is checked
// without reading the blob back.
func (c *conn) blobPut(ctx context.Context, m *relay.BlobPut) (relay.Message, error) {
	if len(m.Data) == 0 || len(m.Data) > relay.MaxChunk {
		return nil, relay.Errorf(relay.CodeTooLarge, "chunk must be between 1 and %d bytes", relay.MaxChunk)
	}
	b, err := live(c.s.store.BlobByUpload(ctx, m.UploadToken))
	if err != nil {
		return nil, err
	}
	if b.Complete || m.Offset != b.Length {
		return nil, &relay.Error{Code: relay.CodeBadOffset, Detail: b.Length, Message: "chunk offset does not match the stored length"}
	}
	if m.Offset+uint64(len(m.Data)) > b.Size {
		return nil, relay.Errorf(relay.CodeTooLarge, "chunk runs past the blob's size")
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b.HashState); err != nil {
		return nil, errors.New("relay: corrupt blob hash state")
	}
	h.Write(m.Data)
	length := m.Offset + uint64(len(m.Data))
	complete := length == b.Size
	if complete && subtle.ConstantTimeCompare(h.Sum(nil), b.Digest[:]) != 1 {
		// A concurrent chunk for the same offset may have completed
		// the blob meanwhile; that one stays.
		if now, err := c.s.store.BlobByUpload(ctx, m.UploadToken); err == nil && now.Length != b.Length {
			return nil, &relay.Error{Code: relay.CodeBadOffset, Detail: now.Length, Message: "chunk offset does not match the stored length"}
		}
		c.s.store.DeleteBlob(ctx, m.UploadToken)
		return nil, relay.Errorf(relay.CodeIntegrity, "blob does not match its digest; upload discarded")
	}
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := c.s.store.PutChunk(ctx, m.UploadToken, m.Offset, m.Data, st, complete); err != nil {
		return nil, err
	}
	c.s.metrics.blobBytes.Add(uint64(len(m.Data)))
	return &relay.BlobStatus{Length: length, Size: b.Size, Complete: complete}, nil
}

func (c *conn) blobStat(ctx context.Context, m *relay.BlobStat) (relay.Message, error) {
	b, err := live(c.s.store.BlobByUpload(ctx, m.UploadToken))
	if err != nil {
		return nil, err
	}
	return &relay.BlobStatus{Length: b.Length, Size: b.Size, Complete: b.Complete}, nil
}

func (c *conn) blobGet(ctx context.Context, m *relay.BlobGet) (relay.Message, error) {
	b, err := live(c.s.store.BlobByDownload(ctx, m.DownloadToken))
	if err != nil {
		return nil, err
	}
	if !b.Complete {
		return nil, relay.Errorf(relay.CodeNotFound, "blob is not complete")
	}
	if m.Offset > b.Size {
		return nil, &relay.Error{Code: relay.CodeBadOffset, Detail: b.Size, Message: "offset past the end of the blob"}
	}
	max := min(int(m.Max), relay.MaxChunk)
	if max == 0 {
		max = relay.MaxChunk
	}
	data, err := c.s.store.ReadBlob(ctx, m.DownloadToken, m.Offset, max)
	if err != nil {
		return nil, err
	}
	return &relay.BlobData{Size: b.Size, Data: data}, nil
}

// live passes on a blob lookup, taking a blob whose time to live has
// passed for gone even before the expiry sweep deletes it, as log entries
// are.
func live(b store.Blob, err error) (store.Blob, error) {
	if err == nil && !time.Now().Before(b.Expires) {
		return store.Blob{}, relay.Errorf(relay.CodeNotFound, "blob expired")
	}
	return b, err
}
