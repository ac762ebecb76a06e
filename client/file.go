package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tainik/tainik/relay"
	relayclient "github.com/tainik/tainik/relay/client"
)

// PartSize is the plaintext size of one attachment part; each part is one
// blob on the relay.
const PartSize = 4 << 20

// FileRef describes an attachment inside an MLS message: where its
// encrypted parts are and the key that opens them. The relay sees only
// the parts.
type FileRef struct {
	Name   string     `json:"name"`
	Size   int64      `json:"size"`
	SHA256 []byte     `json:"sha256"`
	Key    []byte     `json:"key"`
	Relay  string     `json:"relay"`
	Parts  []FilePart `json:"parts"`
}

// check refuses a FileRef that no SendFile makes: another member chose
// it, and GetFile must not trust its numbers.
func (f *FileRef) check() error {
	n := int64(len(f.Parts))
	switch {
	case len(f.Key) != 32 || len(f.SHA256) != sha256.Size:
		return errors.New("client: the attachment's key or checksum has the wrong length")
	case f.Size < 0 || n != max(1, (f.Size+PartSize-1)/PartSize):
		return errors.New("client: the attachment's size does not match its parts")
	}
	if _, err := relay.ParseAddress(f.Relay); err != nil {
		return fmt.Errorf("client: the attachment's relay: %w", err)
	}
	return nil
}

// FilePart is one encrypted part: its blob's download capability.
type FilePart struct {
	Token relay.ID `json:"token"`
	Size  int      `json:"size"` // ciphertext bytes
}

// Progress is called as a transfer advances.
type Progress func(done, total int64)

func partNonce(i, n int) (nonce, aad []byte) {
	nonce = make([]byte, 12)
	binary.BigEndian.PutUint64(nonce[4:], uint64(i))
	aad = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte("tainik file part v1"), uint32(i)), uint32(n))
	return nonce, aad
}

// SendFile encrypts a file with a fresh key, uploads it in parts to the
// conversation's relay and sends a message that carries the key.
func (c *Client) SendFile(ctx context.Context, cv *Conversation, path string, progress Progress) (*Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("client: %s is not a regular file", path)
	}
	if cv.Removed {
		return nil, fmt.Errorf("client: you are no longer a member of %s", cv.Name)
	}
	rc, err := c.conn(ctx, cv.Relay)
	if err != nil {
		return nil, err
	}
	ref := &FileRef{Name: filepath.Base(path), Size: fi.Size(), Key: make([]byte, 32), Relay: cv.Relay}
	rand.Read(ref.Key)
	aead := newGCM(ref.Key)
	n := int((fi.Size() + PartSize - 1) / PartSize)
	if n == 0 {
		n = 1
	}
	h := sha256.New()
	buf := make([]byte, PartSize)
	var done int64
	for i := range n {
		k, err := io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !(errors.Is(err, io.EOF) && fi.Size() == 0) {
			return nil, fmt.Errorf("client: read %s: %w", path, err)
		}
		h.Write(buf[:k])
		nonce, aad := partNonce(i, n)
		ct := aead.Seal(nil, nonce, buf[:k], aad)
		b, err := c.upload(ctx, rc, ct)
		if err != nil {
			return nil, fmt.Errorf("client: upload part %d of %d: %w", i+1, n, err)
		}
		ref.Parts = append(ref.Parts, FilePart{Token: b.DownloadToken, Size: len(ct)})
		done += int64(k)
		if progress != nil {
			progress(done, fi.Size())
		}
	}
	if done != fi.Size() {
		return nil, fmt.Errorf("client: %s changed while it was read", path)
	}
	ref.SHA256 = h.Sum(nil)
	return c.send(ctx, cv, "file "+ref.Name, ref)
}

// upload uploads one part, resuming after a dropped connection.
func (c *Client) upload(ctx context.Context, rc *relayclient.Client, data []byte) (relayclient.Blob, error) {
	var b relayclient.Blob
	var err error
	for range 5 {
		b, err = rc.Upload(ctx, b, data)
		if err == nil || !errors.Is(err, relayclient.ErrDisconnected) {
			return b, err
		}
	}
	return b, err
}

// ErrFileIntegrity is returned by GetFile when a downloaded attachment does
// not match what its sender sent.
var ErrFileIntegrity = errors.New("client: the attachment is damaged or was altered: it does not match its checksum; nothing was saved")

// GetFile downloads, decrypts and checks an attachment and writes it to
// outPath, which must not exist: an existing file is never replaced. A
// partial download is kept in outPath+".part" and resumed.
func (c *Client) GetFile(ctx context.Context, ref *FileRef, outPath string, progress Progress) error {
	if err := ref.check(); err != nil {
		return err
	}
	rc, err := c.conn(ctx, ref.Relay)
	if err != nil {
		return err
	}
	tmp := outPath + ".part"
	if fi, err := os.Lstat(tmp); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("client: %s is not a regular file: remove it or choose another place", tmp)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer f.Close()
	aead := newGCM(ref.Key)
	n := len(ref.Parts)
	h := sha256.New()
	// Resume: keep whole parts already written, rehashing them.
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	have := int(fi.Size() / PartSize)
	if have >= n {
		have = 0
	}
	if _, err := io.CopyN(h, f, int64(have)*PartSize); err != nil {
		have = 0
		h.Reset()
	}
	if err := f.Truncate(int64(have) * PartSize); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if _, err := f.Seek(int64(have)*PartSize, io.SeekStart); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	done := int64(have) * PartSize
	for i := have; i < n; i++ {
		var ct []byte
		for range 5 {
			ct, err = rc.DownloadAtMost(ctx, ref.Parts[i].Token, PartSize+16) // a part and its tag
			if err == nil || !errors.Is(err, relayclient.ErrDisconnected) {
				break
			}
		}
		if err != nil {
			var re *relay.Error
			if errors.As(err, &re) && re.Code == relay.CodeNotFound {
				return fmt.Errorf("client: the attachment has expired on the relay: ask the sender to send it again")
			}
			return fmt.Errorf("client: download part %d of %d: %w", i+1, n, err)
		}
		nonce, aad := partNonce(i, n)
		pt, err := aead.Open(nil, nonce, ct, aad)
		if err != nil {
			f.Truncate(0)
			return ErrFileIntegrity
		}
		if i < n-1 && len(pt) != PartSize {
			f.Truncate(0)
			return ErrFileIntegrity
		}
		h.Write(pt)
		if _, err := f.Write(pt); err != nil {
			return fmt.Errorf("client: write %s: %w", tmp, err)
		}
		done += int64(len(pt))
		if progress != nil {
			progress(done, ref.Size)
		}
	}
	if done != ref.Size || subtle.ConstantTimeCompare(h.Sum(nil), ref.SHA256) != 1 {
		f.Truncate(0)
		return ErrFileIntegrity
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	f.Close()
	err = placeNew(tmp, outPath)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("client: %s exists: the download stays in %s; choose another place", outPath, tmp)
	}
	return err
}

// placeNew moves tmp to path unless path exists (then the error is
// fs.ErrExist and tmp stays). A hard link does it atomically; where the
// file system has none, the check and the rename are two steps.
func placeNew(tmp, path string) error {
	err := os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return fs.ErrExist
	}
	if err == nil {
		os.Remove(tmp)
		return nil
	}
	if _, serr := os.Lstat(path); serr == nil {
		return fs.ErrExist
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// FindFile finds the newest attachment in a conversation by file name or
// message id.
func (c *Client) FindFile(cv *Conversation, name string) (*FileRef, error) {
	msgs := c.History(cv)
	for i := len(msgs) - 1; i >= 0; i-- {
		if f := msgs[i].File; f != nil && (f.Name == name || msgs[i].ID == name) {
			return f, nil
		}
	}
	return nil, fmt.Errorf("client: no file %q in %s: run 'tainik read %s' to see what arrived", name, cv.Name, cv.Name)
}
