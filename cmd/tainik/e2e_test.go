package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tainik/tainik/internal/relayproc"
)

// The end-to-end tests build tainik and tainikd, run a real relay process
// and drive users through the CLI, each with its own --home.

type env struct {
	t      *testing.T
	tainik string
	relayd string
	dir    string
	relay  *relayproc.Proc
	listen string
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	e := &env{t: t, dir: dir,
		tainik: relayproc.Build(t, ".", "tainik"),
		relayd: relayproc.Build(t, "../tainikd", "tainikd"),
		listen: relayproc.FreeAddr(t),
	}
	e.relay = e.startRelay()
	return e
}

// startRelay starts the relay, on the same address and data after a restart.
func (e *env) startRelay() *relayproc.Proc {
	return relayproc.Start(e.t, e.relayd, filepath.Join(e.dir, "relay-data"), e.listen, "-log-level", "error")
}

type user struct {
	e    *env
	home string
	pw   string
}

func (e *env) user(name string) *user {
	u := &user{e: e, home: filepath.Join(e.dir, name), pw: "passphrase of " + name}
	u.ok("init", "--relay", e.relay.Addr)
	return u
}

func (u *user) run(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(u.e.tainik, append([]string{"--home", u.home}, args...)...)
	cmd.Env = append(os.Environ(), "TAINIK_PASSPHRASE="+u.pw)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err = cmd.Run()
	return o.String(), s.String(), err
}

func (u *user) ok(args ...string) string {
	u.e.t.Helper()
	out, errOut, err := u.run(args...)
	if err != nil {
		u.e.t.Fatalf("tainik %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fail runs a command that must fail with an error containing want.
func (u *user) fail(want string, args ...string) {
	u.e.t.Helper()
	_, errOut, err := u.run(args...)
	if err == nil {
		u.e.t.Fatalf("tainik %s succeeded, want error %q", strings.Join(args, " "), want)
	}
	if !strings.Contains(errOut, want) {
		u.e.t.Fatalf("tainik %s: error %q, want it to contain %q", strings.Join(args, " "), errOut, want)
	}
}

func (u *user) jsonOut(v any, args ...string) {
	u.e.t.Helper()
	out := u.ok(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.e.t.Fatalf("tainik --json %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (u *user) history(conv string) []string {
	var r struct {
		Messages []struct {
			Sender string `json:"sender"`
			Text   string `json:"text"`
		} `json:"messages"`
	}
	u.jsonOut(&r, "read", conv)
	var s []string
	for _, m := range r.Messages {
		s = append(s, m.Sender+": "+m.Text)
	}
	return s
}

func (u *user) safetyNumber(contact string) string {
	var r struct {
		SafetyNumber string `json:"safety_number"`
	}
	u.jsonOut(&r, "safety-number", contact)
	return r.SafetyNumber
}

// befriend connects a and b: a invites, b connects, a accepts on read.
func befriend(a *user, aName string, b *user, bName string) {
	t := a.e.t
	t.Helper()
	var inv struct{ Link string }
	a.jsonOut(&inv, "invite", "--name", bName)
	if !strings.HasPrefix(inv.Link, "tainik:invite/") {
		t.Fatalf("invite link %q", inv.Link)
	}
	b.ok("connect", "--name", aName, inv.Link)
	if out := a.ok("read"); !strings.Contains(out, "new contact: "+bName) {
		t.Fatalf("inviter read: %q", out)
	}
	if out := b.ok("read"); !strings.Contains(out, "new contact: "+aName) {
		t.Fatalf("newcomer read: %q", out)
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user("alice"), e.user("bob")

	if out := alice.ok("whoami"); !strings.Contains(out, "identity ") {
		t.Fatalf("whoami: %q", out)
	}
	befriend(alice, "alice", bob, "bob")

	// Both sides see the same safety number.
	na, nb := alice.safetyNumber("bob"), bob.safetyNumber("alice")
	if na != nb || len(na) != 60 {
		t.Fatalf("safety numbers differ: %q and %q", na, nb)
	}
	bob.fail("does not match", "verify", "alice", "123")
	bob.ok("verify", "alice", na)
	var cs []contactJSON
	bob.jsonOut(&cs, "contacts")
	if len(cs) != 1 || cs[0].Name != "alice" || !cs[0].Verified {
		t.Fatalf("bob's contacts: %+v", cs)
	}

	// A message each way.
	alice.ok("send", "bob", "hello bob")
	if out := bob.ok("read"); !strings.Contains(out, "[alice] alice: hello bob") {
		t.Fatalf("bob read: %q", out)
	}
	bob.ok("send", "alice", "hello alice")
	if out := alice.ok("read"); !strings.Contains(out, "[bob] bob: hello alice") {
		t.Fatalf("alice read: %q", out)
	}
	// Reading again brings nothing new: no duplicates.
	if out := alice.ok("read"); strings.Contains(out, "hello") {
		t.Fatalf("second read repeats: %q", out)
	}
	want := []string{"me: hello bob", "bob: hello alice"}
	if got := alice.history("bob"); !equal(got, want) {
		t.Fatalf("alice history %q, want %q", got, want)
	}

	// Neither the relay nor the stores on disk hold the plaintext or the
	// identity keys.
	var who struct{ Identity string }
	alice.jsonOut(&who, "whoami")
	idKey, _ := hex.DecodeString(who.Identity)
	for _, dir := range []string{filepath.Join(e.dir, "relay-data"), alice.home, bob.home} {
		for _, marker := range [][]byte{[]byte("hello bob"), []byte("hello alice"), idKey, []byte(who.Identity)} {
			if hits := relayproc.GrepTree(dir, marker); len(hits) > 0 {
				t.Errorf("%q found in %v", marker, hits)
			}
		}
	}

	// Wrong passphrase: a clear error, and the store still opens after.
	good := bob.pw
	bob.pw = "wrong"
	bob.fail("wrong passphrase", "whoami")
	bob.pw = good
	want = []string{"alice: hello bob", "me: hello alice"}
	if got := bob.history("alice"); !equal(got, want) {
		t.Fatalf("bob history %q, want %q", got, want)
	}

	// A tampered link.
	var inv struct{ Link string }
	alice.jsonOut(&inv, "invite")
	l := []byte(inv.Link)
	l[len(l)-5] ^= 1
	if l[len(l)-5] == '-' || l[len(l)-5] == '_' || l[len(l)-5] == 0 {
		l[len(l)-5] = 'A'
	}
	bob.fail("invalid invitation link", "connect", string(l))

	// Relay down: a clear error.
	e.relay.Kill()
	alice.fail("cannot reach relay", "send", "bob", "into the void")
	alice.fail("check that the relay is running", "read")

	// Relay back, same data: everything continues; history survived.
	e.relay = e.startRelay()
	alice.ok("send", "bob", "back again")
	want = []string{"alice: hello bob", "me: hello alice", "alice: back again"}
	if got := bob.history("alice"); !equal(got, want) {
		t.Fatalf("bob history after relay restart %q, want %q", got, want)
	}
}

func TestGroupEndToEnd(t *testing.T) {
	e := newEnv(t)
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	befriend(alice, "alice", bob, "bob")
	befriend(alice, "alice", carol, "carol")
	alice.ok("read") // the KeyPackages bob and carol published

	alice.ok("group", "create", "team")
	alice.ok("group", "add", "team", "bob")
	alice.ok("group", "add", "team", "carol")
	alice.ok("send", "team", "welcome")
	if out := bob.ok("read"); !strings.Contains(out, "[team] alice: welcome") {
		t.Fatalf("bob read: %q", out)
	}
	bob.ok("send", "team", "hi all")
	alice.ok("send", "team", "carol is offline")
	// carol was offline for all of it and catches up from the log.
	out := carol.ok("read")
	for _, want := range []string{"[team] alice: welcome", "hi all", "[team] alice: carol is offline"} {
		if !strings.Contains(out, want) {
			t.Fatalf("carol read %q, want %q in it", out, want)
		}
	}
	var members []string
	alice.jsonOut(&members, "group", "members", "team")
	if len(members) != 3 {
		t.Fatalf("members %q", members)
	}

	// bob is removed and reads nothing sent afterwards.
	alice.ok("group", "remove", "team", "bob")
	alice.ok("send", "team", "after bob")
	if out := bob.ok("read"); strings.Contains(out, "after bob") {
		t.Fatalf("removed bob read %q", out)
	}
	if got := strings.Join(bob.history("team"), "\n"); strings.Contains(got, "after bob") {
		t.Fatalf("removed bob's history %q", got)
	}
	bob.fail("no longer a member", "send", "team", "let me in")
	if out := carol.ok("read"); !strings.Contains(out, "[team] alice: after bob") {
		t.Fatalf("carol read %q", out)
	}

	// carol leaves; alice's next read commits it.
	carol.ok("group", "leave", "team")
	alice.ok("read")
	alice.jsonOut(&members, "group", "members", "team")
	if len(members) != 1 {
		t.Fatalf("members after leave %q", members)
	}
}

func TestFilesTimersBackupEndToEnd(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user("alice"), e.user("bob")
	befriend(alice, "alice", bob, "bob")

	// A 50 MB file arrives intact.
	data := make([]byte, 50<<20)
	rand.Read(data)
	src := filepath.Join(e.dir, "recording.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, progress, err := alice.run("send-file", "bob", src)
	if err != nil {
		t.Fatalf("send-file: %v\n%s", err, progress)
	}
	if !strings.Contains(progress, "(100%)") {
		t.Errorf("no progress shown: %q", progress)
	}
	if out := bob.ok("read"); !strings.Contains(out, "get-file alice recording.bin") {
		t.Fatalf("bob read %q", out)
	}
	dest := filepath.Join(e.dir, "got.bin")
	bob.ok("get-file", "alice", "recording.bin", "--out", dest)
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file differs (err %v, %d bytes)", err, len(got))
	}
	bob.fail("exists", "get-file", "alice", "recording.bin", "--out", dest)

	// Backup and restore into a new home.
	bk := filepath.Join(e.dir, "bob.backup")
	bob.ok("backup", bk)
	restored := &user{e: e, home: filepath.Join(e.dir, "bob2"), pw: bob.pw}
	restored.ok("restore", bk)
	if h := restored.history("alice"); len(h) != 1 || !strings.Contains(h[0], "recording.bin") {
		t.Fatalf("restored history %q", h)
	}

	// Disappearing messages vanish on both sides.
	alice.ok("disappear", "bob", "4s")
	alice.ok("send", "bob", "burn after reading")
	if out := bob.ok("read"); !strings.Contains(out, "burn after reading") {
		t.Fatalf("bob read %q", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, b := strings.Join(alice.history("bob"), "|"), strings.Join(bob.history("alice"), "|")
		if !strings.Contains(a, "burn") && !strings.Contains(b, "burn") {
			if !strings.Contains(b, "recording.bin") {
				t.Fatalf("the message before the timer vanished too: %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message did not disappear: alice %q, bob %q", a, b)
		}
	}
}

func TestChatAndWatchEndToEnd(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user("alice"), e.user("bob")
	befriend(alice, "alice", bob, "bob")

	// bob watches while alice chats; both run at once on their own homes,
	// and bob's other commands still work while watch runs. Its fallback
	// timer is an hour, so what it prints came by push.
	wout := bob.watch()

	chat := exec.Command(e.tainik, "--home", alice.home, "chat", "bob")
	chat.Env = append(os.Environ(), "TAINIK_PASSPHRASE="+alice.pw)
	chat.Stdin = strings.NewReader("first line\nsecond line\n")
	if out, err := chat.CombinedOutput(); err != nil {
		t.Fatalf("chat: %v\n%s", err, out)
	}
	waitFor(t, wout, "[alice] alice: second line")
	if !strings.Contains(wout.String(), "[alice] alice: first line") {
		t.Fatalf("watch printed %q", wout.String())
	}
	bob.ok("send", "alice", "while watching")
	if got := alice.history("bob"); !equal(got, []string{"me: first line", "me: second line", "bob: while watching"}) {
		t.Fatalf("alice history %q", got)
	}
}

// watch starts "tainik watch" on u's home with a fallback timer of an
// hour, and returns what it prints.
func (u *user) watch() *relayproc.SyncBuffer {
	out, _ := u.watchEvery("1h")
	return out
}

// watchEvery starts "tainik watch --interval interval" on u's home and
// returns what it prints and its process.
func (u *user) watchEvery(interval string) (*relayproc.SyncBuffer, *os.Process) {
	t := u.e.t
	cmd := exec.Command(u.e.tainik, "--home", u.home, "watch", "--interval", interval)
	cmd.Env = append(os.Environ(), "TAINIK_PASSPHRASE="+u.pw)
	out := new(relayproc.SyncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return out, cmd.Process
}

// cpuTime is the CPU time a process has used (Linux /proc, in clock
// ticks of 10 ms).
func cpuTime(t *testing.T, p *os.Process) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid))
	if err != nil {
		t.Fatalf("reading the CPU time of the watch process: %v", err)
	}
	// Fields after the command name, which is in parentheses: state is
	// the first, utime the 12th and stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// storeReplaced counts, for d, how often the store file in home is
// replaced (every save writes a new file).
func storeReplaced(t *testing.T, home string, d time.Duration) int {
	t.Helper()
	path := filepath.Join(home, "store.tainik")
	last, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(path); err == nil && (!os.SameFile(fi, last) || !fi.ModTime().Equal(last.ModTime())) {
			n, last = n+1, fi
		}
	}
	return n
}

// TestWatchIdle: idle watches neither spin nor rewrite the profile, even
// two on one profile (each would take the other's save for news), and a
// watch that finds the relay down does not keep the profile locked.
func TestWatchIdle(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user("alice"), e.user("bob")
	befriend(alice, "alice", bob, "bob")
	_, p := bob.watchEvery("2s")
	bob.watch()
	time.Sleep(2 * time.Second) // the first fetches and subscriptions
	cpu := cpuTime(t, p)
	if n := storeReplaced(t, bob.home, 4*time.Second); n > 0 {
		t.Errorf("two idle watches replaced the store %d times in 4 s", n)
	}
	if used := cpuTime(t, p) - cpu; used > 400*time.Millisecond {
		t.Errorf("an idle watch used %v of CPU in 4 s", used)
	}

	e.relay.Kill()
	time.Sleep(3 * time.Second) // the 2 s timer fires with the relay down
	if _, errOut, err := bob.run("contacts"); err != nil {
		t.Fatalf("contacts while the relay is down and watch runs: %v\n%s", err, errOut)
	}
}

// waitFor waits up to 20 s for out to contain want.
func waitFor(t *testing.T, out *relayproc.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %q; printed %q", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchByPush: with the fallback timer at an hour, watch learns of a
// contact request, of the contact's acceptance, and of messages only from
// the relay's pushes and from the other tainik commands run on its home.
func TestWatchByPush(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user("alice"), e.user("bob")
	aout, bout := alice.watch(), bob.watch()
	// Let both watches make their first fetch and subscribe.
	time.Sleep(500 * time.Millisecond)

	// alice's invitation is made by another command while her watch
	// runs: the watch sees the profile change and subscribes to the new
	// queue. bob's connect adds a reply queue to his profile the same way.
	var inv struct{ Link string }
	alice.jsonOut(&inv, "invite", "--name", "bob")
	time.Sleep(1500 * time.Millisecond) // the watch checks the profile every second
	bob.ok("connect", "--name", "alice", inv.Link)
	waitFor(t, aout, "new contact: bob")
	waitFor(t, bout, "new contact: alice")

	bob.ok("send", "alice", "pushed to alice")
	waitFor(t, aout, "[bob] bob: pushed to alice")
	alice.ok("send", "bob", "pushed to bob")
	waitFor(t, bout, "[alice] alice: pushed to bob")

	// The relay restarts: the watches keep running, reconnect, renew
	// their subscriptions, and get the next message by push.
	e.relay.Kill()
	e.relay = e.startRelay()
	alice.ok("send", "bob", "after the restart")
	waitFor(t, bout, "[alice] alice: after the restart")
}

// Ctrl-C stops watch at once even while another process holds the
// profile and watch waits for it.
func TestWatchInterruptedWhileProfileBusy(t *testing.T) {
	e := newEnv(t)
	bob := e.user("bob")
	out, p := bob.watchEvery("1s")
	time.Sleep(500 * time.Millisecond)
	f, err := os.OpenFile(filepath.Join(bob.home, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the timer fires; watch waits for the lock
	start := time.Now()
	p.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { _, err := p.Wait(); done <- err }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatalf("watch still running 3 s after Ctrl-C; printed %q", out.String())
	}
	t.Logf("watch stopped %v after Ctrl-C", time.Since(start))
}
