package client

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
)

// ErrWrongPassphrase is returned by Open when the passphrase does not
// decrypt the store. The store is left unchanged.
var ErrWrongPassphrase = errors.New("client: wrong passphrase: the store could not be decrypted; try again, or check TAINIK_PASSPHRASE")

// BusyError is returned by Open and Reload when another process held the
// home directory for longer than they wait (10 s).
type BusyError struct{ Home string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("client: another tainik process is using %s (for example 'tainik watch' or 'tainik chat'): stop it or try again", e.Home)
}

// ErrNoProfile is returned by Open when the home directory holds no profile.
var ErrNoProfile = errors.New("client: no profile in this home directory: run 'tainik init' first")

// KDFParams are the Argon2id parameters that derive the store key from the
// passphrase. They are recorded in the store header.
type KDFParams struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultKDF is used by Init unless Options say otherwise.
var DefaultKDF = KDFParams{Time: 1, Memory: 64 * 1024, Threads: 4}

const (
	storeFile  = "store.tainik"
	storeMagic = "TAINIKS1"
	saltSize   = 16
	headerSize = len(storeMagic) + saltSize + 4 + 4 + 1
)

// vault is the encrypted file that holds the whole profile. The file is
// magic || salt || time || memory || threads || nonce || AES-256-GCM(state),
// the header being the additional data. It is replaced atomically on save.
type vault struct {
	path   string
	header []byte
	key    []byte
	// seen is the store file as this process last read or wrote it,
	// and sum the SHA-256 of its plaintext.
	seen os.FileInfo
	sum  [32]byte
}

// note records the store file as it is now, and the digest of its
// plaintext, after a read or write with the home locked.
func (v *vault) note(sum [32]byte) {
	v.seen, _ = os.Stat(v.path)
	v.sum = sum
}

// changed says whether the store file is no longer the one noted: every
// save writes a new file and renames it into place.
func (v *vault) changed() bool {
	fi, err := os.Stat(v.path)
	if err != nil || v.seen == nil {
		return true
	}
	return !os.SameFile(fi, v.seen) || !fi.ModTime().Equal(v.seen.ModTime()) || fi.Size() != v.seen.Size()
}

func storePath(home string) string { return filepath.Join(home, storeFile) }

func createVault(home string, passphrase []byte, p KDFParams) (*vault, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("client: create home directory: %w", err)
	}
	path := storePath(home)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("client: %s already holds a profile: use another --home, or delete it to start over", home)
	}
	h := make([]byte, 0, headerSize)
	h = append(h, storeMagic...)
	salt := make([]byte, saltSize)
	rand.Read(salt)
	h = append(h, salt...)
	h = binary.BigEndian.AppendUint32(h, p.Time)
	h = binary.BigEndian.AppendUint32(h, p.Memory)
	h = append(h, p.Threads)
	return &vault{path: path, header: h, key: deriveKey(passphrase, h)}, nil
}

func deriveKey(passphrase, header []byte) []byte {
	salt := header[len(storeMagic) : len(storeMagic)+saltSize]
	rest := header[len(storeMagic)+saltSize:]
	t := binary.BigEndian.Uint32(rest)
	m := binary.BigEndian.Uint32(rest[4:])
	th := rest[8]
	return argon2.IDKey(passphrase, salt, t, m, th, 32)
}

// openVault reads and decrypts the store into st.
func openVault(home string, passphrase []byte, st any) (*vault, error) {
	path := storePath(home)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoProfile
	}
	if err != nil {
		return nil, fmt.Errorf("client: read store: %w", err)
	}
	if len(data) < headerSize+12 || !bytes.HasPrefix(data, []byte(storeMagic)) {
		return nil, fmt.Errorf("client: %s is not a Tainik store or is damaged: restore it from a backup", path)
	}
	rest := data[len(storeMagic)+saltSize:]
	// time, memory (KiB), threads: Argon2id needs time and threads of
	// at least 1, and a store (or a backup from elsewhere) that asks for
	// more than 1 GiB or 100 passes is damaged or hostile.
	if t, m, p := binary.BigEndian.Uint32(rest), binary.BigEndian.Uint32(rest[4:]), rest[8]; t < 1 || t > 100 || m < 8*uint32(p) || m > 1<<20 || p < 1 {
		return nil, fmt.Errorf("client: %s has unreasonable key derivation parameters: it is damaged", path)
	}
	v := &vault{path: path, header: bytes.Clone(data[:headerSize])}
	v.key = deriveKey(passphrase, v.header)
	aead := newGCM(v.key)
	nonce := data[headerSize : headerSize+12]
	plain, err := aead.Open(nil, nonce, data[headerSize+12:], v.header)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	if err := json.Unmarshal(plain, st); err != nil {
		return nil, fmt.Errorf("client: decode store: %w", err)
	}
	v.note(sha256.Sum256(plain))
	return v, nil
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// save encrypts st and replaces the store file atomically.
//
// A save that would write what the file already holds writes nothing:
// Sync saves after every fetch, and a long-running front end takes a
// change of the file as a sign that another command changed the profile.
func (v *vault) save(st any) error {
	plain, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("client: encode store: %w", err)
	}
	sum := sha256.Sum256(plain)
	if v.seen != nil && sum == v.sum && !v.changed() {
		return nil
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	out := append(bytes.Clone(v.header), nonce...)
	out = newGCM(v.key).Seal(out, nonce, plain, v.header)
	tmp := v.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("client: write store: %w", err)
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return fmt.Errorf("client: write store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("client: write store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("client: write store: %w", err)
	}
	if err := os.Rename(tmp, v.path); err != nil {
		return fmt.Errorf("client: write store: %w", err)
	}
	// The rename is durable once the directory is: without it a crash
	// could bring back the previous store, and with it MLS keys already
	// used. Not every system can sync a directory; that is not an error.
	if d, err := os.Open(filepath.Dir(v.path)); err == nil {
		d.Sync()
		d.Close()
	}
	v.note(sum)
	return nil
}

// load rereads the store with the key already derived.
func (v *vault) load(st any) error {
	data, err := os.ReadFile(v.path)
	if err != nil {
		return fmt.Errorf("client: read store: %w", err)
	}
	if len(data) < headerSize+12 || !bytes.Equal(data[:headerSize], v.header) {
		return fmt.Errorf("client: %s was replaced by another profile: open it again", v.path)
	}
	plain, err := newGCM(v.key).Open(nil, data[headerSize:headerSize+12], data[headerSize+12:], v.header)
	if err != nil {
		return fmt.Errorf("client: %s is damaged: restore it from a backup", v.path)
	}
	if err := json.Unmarshal(plain, st); err != nil {
		return fmt.Errorf("client: decode store: %w", err)
	}
	v.note(sha256.Sum256(plain))
	return nil
}
