package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tainik/tainik/mls"
)

// member is one MLS client of an interoperability scenario, on either
// implementation. Every message crosses between members as an encoded
// MLSMessage. Methods fail the test on error, except tryProcess.
type member interface {
	impl() string
	keyPackage(t *testing.T) []byte
	createGroup(t *testing.T, groupID []byte)
	// commit commits the proposals received so far plus adds and removes
	// by value; with none of them it is an empty commit, which carries an
	// UpdatePath (RFC 9420, Section 12.4). The commit is already merged.
	commit(t *testing.T, add [][]byte, remove []mls.LeafIndex) (commit, welcome []byte)
	// commitTreeOutOfBand commits adds with a Welcome whose GroupInfo has
	// no ratchet_tree extension, and returns the tree to send alongside.
	commitTreeOutOfBand(t *testing.T, add [][]byte) (commit, welcome, tree []byte)
	// join joins by Welcome; tree is the ratchet tree when the Welcome
	// does not carry it.
	join(t *testing.T, welcome, tree []byte)
	tryJoin(welcome, tree []byte) error
	proposeAdd(t *testing.T, keyPackage []byte) []byte
	proposeRemove(t *testing.T, leaf mls.LeafIndex) []byte
	tryProcess(msg []byte) (processed, error)
	encrypt(t *testing.T, data []byte) []byte
	groupInfo(t *testing.T) []byte
	externalJoin(t *testing.T, groupInfo []byte) (commit []byte)
	state(t *testing.T) memberState
}

// processed is what processing a message did: kind is "application"
// (with data), "proposal", "commit" or "removed".
type processed struct {
	Kind string
	Data []byte
}

// memberState is what both implementations must agree on after each
// commit.
type memberState struct {
	Epoch              uint64
	EpochAuthenticator []byte
	Exporter           []byte
	Leaf               mls.LeafIndex
	Members            int
}

// The exporter arguments both sides are asked for (RFC 9420, Section 8.5).
const (
	exportLabel  = "tainik interop"
	exportLength = 32
)

var exportContext = []byte("context")

// goMember is a member on this module's mls package.
type goMember struct {
	name    string
	cs      mls.CipherSuite
	cfg     mls.Config
	sigKey  *mls.SignaturePrivateKey
	kp      *mls.KeyPackage
	secrets *mls.KeyPackageSecrets
	g       *mls.Group
}

func newGoMember(t *testing.T, cs mls.CipherSuite, name string) *goMember {
	t.Helper()
	sk, err := cs.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return &goMember{name: name, cs: cs, cfg: mls.Config{ValidateCredential: mls.AcceptAnyCredential}, sigKey: sk}
}

func (m *goMember) impl() string { return "go" }

func (m *goMember) cred() mls.Credential {
	return mls.Credential{Type: mls.CredentialBasic, Identity: []byte(m.name)}
}

func (m *goMember) fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("go member %s: %s", m.name, fmt.Sprintf(format, args...))
}

func (m *goMember) marshal(t *testing.T, msg *mls.MLSMessage) []byte {
	t.Helper()
	data, err := msg.Marshal()
	if err != nil {
		m.fatalf(t, "%v", err)
	}
	return data
}

func (m *goMember) unmarshal(t *testing.T, data []byte, want mls.WireFormat) *mls.MLSMessage {
	t.Helper()
	msg, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		m.fatalf(t, "%v", err)
	}
	if msg.WireFormat != want {
		m.fatalf(t, "got wire format %d, want %d", msg.WireFormat, want)
	}
	return msg
}

func (m *goMember) newKeyPackage(t *testing.T) (*mls.KeyPackage, *mls.KeyPackageSecrets) {
	t.Helper()
	kp, sec, err := mls.NewKeyPackage(m.cs, m.cred(), m.sigKey, mls.KeyPackageOptions{})
	if err != nil {
		m.fatalf(t, "%v", err)
	}
	return kp, sec
}

func (m *goMember) keyPackage(t *testing.T) []byte {
	t.Helper()
	m.kp, m.secrets = m.newKeyPackage(t)
	return m.marshal(t, &mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: m.kp})
}

func (m *goMember) createGroup(t *testing.T, groupID []byte) {
	t.Helper()
	kp, sec := m.newKeyPackage(t)
	g, err := mls.NewGroup(m.cfg, groupID, kp, sec, m.sigKey, nil)
	if err != nil {
		m.fatalf(t, "%v", err)
	}
	m.g = g
}

func (m *goMember) commit(t *testing.T, add [][]byte, remove []mls.LeafIndex) (commit, welcome []byte) {
	t.Helper()
	return m.commitWith(t, mls.CommitOptions{Remove: remove}, add)
}

func (m *goMember) commitTreeOutOfBand(t *testing.T, add [][]byte) (commit, welcome, tree []byte) {
	t.Helper()
	commit, welcome = m.commitWith(t, mls.CommitOptions{OmitRatchetTree: true}, add)
	rt, err := m.g.RatchetTree()
	if err != nil {
		m.fatalf(t, "ratchet tree: %v", err)
	}
	if tree, err = rt.Marshal(); err != nil {
		m.fatalf(t, "ratchet tree: %v", err)
	}
	return commit, welcome, tree
}

func (m *goMember) commitWith(t *testing.T, opts mls.CommitOptions, add [][]byte) (commit, welcome []byte) {
	t.Helper()
	for _, data := range add {
		opts.Add = append(opts.Add, m.unmarshal(t, data, mls.WireFormatKeyPackage).KeyPackage)
	}
	out, err := m.g.Commit(opts)
	if err != nil {
		m.fatalf(t, "commit: %v", err)
	}
	if _, err := m.g.MergePendingCommit(); err != nil {
		m.fatalf(t, "merge commit: %v", err)
	}
	commit = m.marshal(t, out.Commit)
	if out.Welcome != nil {
		welcome = m.marshal(t, out.Welcome)
	}
	return commit, welcome
}

func (m *goMember) join(t *testing.T, welcome, tree []byte) {
	t.Helper()
	if err := m.tryJoin(welcome, tree); err != nil {
		m.fatalf(t, "join: %v", err)
	}
}

func (m *goMember) tryJoin(welcome, tree []byte) error {
	msg, err := mls.UnmarshalMLSMessage(welcome)
	if err != nil {
		return err
	}
	if msg.WireFormat != mls.WireFormatWelcome {
		return fmt.Errorf("got wire format %d, want a Welcome", msg.WireFormat)
	}
	var rt mls.RatchetTree
	if tree != nil {
		if rt, err = mls.UnmarshalRatchetTree(tree); err != nil {
			return err
		}
	}
	g, err := mls.JoinFromWelcome(m.cfg, msg.Welcome, m.kp, m.secrets, m.sigKey, rt)
	if err != nil {
		return err
	}
	m.g = g
	return nil
}

func (m *goMember) tryProcess(data []byte) (processed, error) {
	msg, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		return processed{}, err
	}
	p, err := m.g.Process(msg)
	if err != nil {
		return processed{}, err
	}
	switch {
	case p.ContentType == mls.ContentTypeApplication:
		return processed{Kind: "application", Data: p.ApplicationData}, nil
	case p.Commit != nil && p.Commit.RemovedSelf:
		return processed{Kind: "removed"}, nil
	case p.Commit != nil:
		return processed{Kind: "commit"}, nil
	default:
		return processed{Kind: "proposal"}, nil
	}
}

func (m *goMember) encrypt(t *testing.T, data []byte) []byte {
	t.Helper()
	msg, err := m.g.Encrypt(data, nil)
	if err != nil {
		m.fatalf(t, "encrypt: %v", err)
	}
	return m.marshal(t, msg)
}

func (m *goMember) groupInfo(t *testing.T) []byte {
	t.Helper()
	gi, err := m.g.GroupInfo(false)
	if err != nil {
		m.fatalf(t, "group info: %v", err)
	}
	return m.marshal(t, &mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi})
}

func (m *goMember) externalJoin(t *testing.T, groupInfo []byte) []byte {
	t.Helper()
	gi := m.unmarshal(t, groupInfo, mls.WireFormatGroupInfo).GroupInfo
	g, commit, err := mls.JoinExternal(m.cfg, gi, nil, m.cred(), m.sigKey, mls.ExternalJoinOptions{})
	if err != nil {
		m.fatalf(t, "external join: %v", err)
	}
	m.g = g
	return m.marshal(t, commit)
}

func (m *goMember) proposeAdd(t *testing.T, keyPackage []byte) []byte {
	t.Helper()
	msg, err := m.g.ProposeAdd(m.unmarshal(t, keyPackage, mls.WireFormatKeyPackage).KeyPackage)
	if err != nil {
		m.fatalf(t, "propose add: %v", err)
	}
	return m.marshal(t, msg)
}

func (m *goMember) proposeRemove(t *testing.T, leaf mls.LeafIndex) []byte {
	t.Helper()
	msg, err := m.g.ProposeRemove(leaf)
	if err != nil {
		m.fatalf(t, "propose remove: %v", err)
	}
	return m.marshal(t, msg)
}

// proposeUpdate sends an Update proposal for a fresh leaf key; ts-mls 1.6.4
// has no API to do the same (see README.md).
func (m *goMember) proposeUpdate(t *testing.T) []byte {
	t.Helper()
	msg, err := m.g.ProposeUpdate()
	if err != nil {
		m.fatalf(t, "propose update: %v", err)
	}
	return m.marshal(t, msg)
}

func (m *goMember) state(t *testing.T) memberState {
	t.Helper()
	exp, err := m.g.Export(exportLabel, exportContext, exportLength)
	if err != nil {
		m.fatalf(t, "export: %v", err)
	}
	return memberState{
		Epoch:              m.g.Epoch(),
		EpochAuthenticator: m.g.EpochAuthenticator(),
		Exporter:           exp,
		Leaf:               m.g.OwnLeaf(),
		Members:            len(m.g.Members()),
	}
}

// driverDir is the Node program's directory, relative to this package.
const driverDir = "tsmls"

// requireDriver skips the test, or fails it in CI, when Node or the
// driver's dependencies are missing.
func requireDriver(t *testing.T) {
	t.Helper()
	var missing string
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(driverDir, "node_modules", "ts-mls")); err != nil {
		missing = "the ts-mls driver's dependencies are not installed; run: npm ci --prefix interop/tsmls"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" || os.Getenv("TAINIK_REQUIRE_SERVICES") == "1" {
		t.Fatal(missing)
	}
	t.Skip(missing)
}

// lockedBuffer collects the driver's stderr while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tsMember is a member on ts-mls, in its own Node process running
// tsmls/driver.mjs.
type tsMember struct {
	name   string
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *lockedBuffer
}

// driverTimeout bounds one driver process, so that a wedged Node program
// fails the test instead of hanging it.
const driverTimeout = 90 * time.Second

func newTSMember(t *testing.T, cs mls.CipherSuite, name string) *tsMember {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), driverTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "node", filepath.Join(driverDir, "driver.mjs"))
	m := &tsMember{name: name, stderr: new(lockedBuffer)}
	cmd.Stderr = m.stderr
	var err error
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m.stdout = bufio.NewReaderSize(out, 1<<20)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the ts-mls driver: %v", err)
	}
	t.Cleanup(func() {
		// Closing stdin ends the driver's read loop; the context kills a
		// driver that does not exit by itself.
		m.stdin.Close()
		cancel()
		cmd.Wait()
	})
	m.call(t, "init", map[string]any{"suite": int(cs), "name": name}, nil)
	return m
}

func (m *tsMember) impl() string { return "ts-mls" }

// request sends one command and decodes its response into resp.
func (m *tsMember) request(op string, args map[string]any, resp any) error {
	cmd := map[string]any{"op": op}
	for k, v := range args {
		cmd[k] = v
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if _, err := m.stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing to the driver: %w", err)
	}
	reply, err := m.stdout.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading from the driver: %w", err)
	}
	var e struct{ Error, Stack string }
	if err := json.Unmarshal(reply, &e); err != nil {
		return fmt.Errorf("driver reply %q: %w", reply, err)
	}
	if e.Error != "" {
		return &driverError{msg: e.Error, stack: e.Stack}
	}
	if resp == nil {
		return nil
	}
	return json.Unmarshal(reply, resp)
}

// driverError is an error the driver answered with, and where in ts-mls
// (or the driver) it was thrown.
type driverError struct{ msg, stack string }

func (e *driverError) Error() string { return e.msg }

func (m *tsMember) call(t *testing.T, op string, args map[string]any, resp any) {
	t.Helper()
	if err := m.request(op, args, resp); err != nil {
		// The stack comes with the reply; stderr is copied concurrently and
		// may lag behind it, so it is only the driver's log so far.
		var de *driverError
		if errors.As(err, &de) {
			t.Fatalf("ts-mls member %s: %s: %v\n%s", m.name, op, err, de.stack)
		}
		t.Fatalf("ts-mls member %s: %s: %v\ndriver stderr so far:\n%s", m.name, op, err, m.stderr.String())
	}
}

func (m *tsMember) unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("ts-mls member %s: %v", m.name, err)
	}
	return b
}

func (m *tsMember) keyPackage(t *testing.T) []byte {
	t.Helper()
	var r struct{ KeyPackage string }
	m.call(t, "keyPackage", nil, &r)
	return m.unhex(t, r.KeyPackage)
}

func (m *tsMember) createGroup(t *testing.T, groupID []byte) {
	t.Helper()
	m.call(t, "createGroup", map[string]any{"groupId": hex.EncodeToString(groupID)}, nil)
}

func (m *tsMember) commit(t *testing.T, add [][]byte, remove []mls.LeafIndex) (commit, welcome []byte) {
	t.Helper()
	adds := []string{}
	for _, kp := range add {
		adds = append(adds, hex.EncodeToString(kp))
	}
	removes := []uint32{}
	for _, l := range remove {
		removes = append(removes, uint32(l))
	}
	var r struct{ Commit, Welcome string }
	m.call(t, "commit", map[string]any{"add": adds, "remove": removes}, &r)
	return m.unhex(t, r.Commit), m.unhex(t, r.Welcome)
}

func (m *tsMember) commitTreeOutOfBand(t *testing.T, add [][]byte) (commit, welcome, tree []byte) {
	t.Helper()
	adds := []string{}
	for _, kp := range add {
		adds = append(adds, hex.EncodeToString(kp))
	}
	var r struct{ Commit, Welcome, RatchetTree string }
	m.call(t, "commit", map[string]any{"add": adds, "treeOutOfBand": true}, &r)
	return m.unhex(t, r.Commit), m.unhex(t, r.Welcome), m.unhex(t, r.RatchetTree)
}

func (m *tsMember) join(t *testing.T, welcome, tree []byte) {
	t.Helper()
	m.call(t, "join", m.joinArgs(welcome, tree), nil)
}

func (m *tsMember) tryJoin(welcome, tree []byte) error {
	return m.request("join", m.joinArgs(welcome, tree), nil)
}

func (m *tsMember) joinArgs(welcome, tree []byte) map[string]any {
	args := map[string]any{"welcome": hex.EncodeToString(welcome)}
	if tree != nil {
		args["ratchetTree"] = hex.EncodeToString(tree)
	}
	return args
}

func (m *tsMember) proposeAdd(t *testing.T, keyPackage []byte) []byte {
	t.Helper()
	var r struct{ Message string }
	m.call(t, "propose", map[string]any{"add": hex.EncodeToString(keyPackage)}, &r)
	return m.unhex(t, r.Message)
}

func (m *tsMember) proposeRemove(t *testing.T, leaf mls.LeafIndex) []byte {
	t.Helper()
	var r struct{ Message string }
	m.call(t, "propose", map[string]any{"remove": uint32(leaf)}, &r)
	return m.unhex(t, r.Message)
}

func (m *tsMember) tryProcess(msg []byte) (processed, error) {
	var r struct{ Kind, Data string }
	if err := m.request("process", map[string]any{"message": hex.EncodeToString(msg)}, &r); err != nil {
		return processed{}, err
	}
	data, err := hex.DecodeString(r.Data)
	return processed{Kind: r.Kind, Data: data}, err
}

func (m *tsMember) encrypt(t *testing.T, data []byte) []byte {
	t.Helper()
	var r struct{ Message string }
	m.call(t, "encrypt", map[string]any{"data": hex.EncodeToString(data)}, &r)
	return m.unhex(t, r.Message)
}

func (m *tsMember) groupInfo(t *testing.T) []byte {
	t.Helper()
	var r struct{ GroupInfo string }
	m.call(t, "groupInfo", nil, &r)
	return m.unhex(t, r.GroupInfo)
}

func (m *tsMember) externalJoin(t *testing.T, groupInfo []byte) []byte {
	t.Helper()
	var r struct{ Commit string }
	m.call(t, "externalJoin", map[string]any{"groupInfo": hex.EncodeToString(groupInfo)}, &r)
	return m.unhex(t, r.Commit)
}

func (m *tsMember) state(t *testing.T) memberState {
	t.Helper()
	var r struct {
		Epoch                        uint64
		EpochAuthenticator, Exporter string
		Leaf                         uint32
		Members                      int
	}
	m.call(t, "state", map[string]any{
		"label":   exportLabel,
		"context": hex.EncodeToString(exportContext),
		"length":  exportLength,
	}, &r)
	return memberState{
		Epoch:              r.Epoch,
		EpochAuthenticator: m.unhex(t, r.EpochAuthenticator),
		Exporter:           m.unhex(t, r.Exporter),
		Leaf:               mls.LeafIndex(r.Leaf),
		Members:            r.Members,
	}
}
