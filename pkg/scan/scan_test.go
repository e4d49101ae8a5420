package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/state"
)

var testKey = bytes.Repeat([]byte{0x5a}, 32)

func testConsumers(t testing.TB) map[string]consumer.Consumer {
	t.Helper()
	cons, err := consumer.NewAll(consumer.Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

func openStore(t testing.TB) *state.Store {
	t.Helper()
	s, err := state.Open(filepath.Join(t.TempDir(), "state", state.StoreFile), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const passwdText = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"

// fixture is a small host: identity files, a recursive tree, a flat
// directory, a glob and a path that does not exist yet.
type fixture struct {
	root  string
	rules []config.Watch
	store *state.Store
	cons  map[string]consumer.Consumer
}

func newFixture(t *testing.T) *fixture {
	root := t.TempDir()
	f := &fixture{root: root, store: openStore(t), cons: testConsumers(t)}
	writeFile(t, f.p("etc/passwd"), passwdText)
	writeFile(t, f.p("etc/motd"), "hello\n")
	writeFile(t, f.p("srv/app/a.conf"), "a=1\n")
	writeFile(t, f.p("srv/app/sub/b.conf"), "b=1\n")
	writeFile(t, f.p("srv/app/cache/junk"), "junk\n")
	writeFile(t, f.p("flat/x"), "x\n")
	writeFile(t, f.p("flat/deeper/y"), "y\n")
	writeFile(t, f.p("home/alice/.ssh/authorized_keys"), "")
	f.rules = []config.Watch{
		{Path: f.p("etc/passwd")},
		{Path: f.p("etc/motd")},
		{Path: f.p("etc/later"), Kind: "passwd"},
		{Path: f.p("srv/app"), Recursive: true, Exclude: []string{"cache"}},
		{Path: f.p("flat")},
		{Path: f.p("home/*/.ssh/authorized_keys")},
	}
	return f
}

func (f *fixture) p(rel string) string { return filepath.Join(f.root, rel) }

func (f *fixture) run(t *testing.T, update bool) Result {
	t.Helper()
	res, err := Run(context.Background(), f.rules, 16, f.store, f.cons, ScanOptions{Update: update})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Errorf("scan error: %v", e)
	}
	return res
}

// summary lists findings as "action rel-path".
func (f *fixture) summary(res Result) []string {
	var out []string
	for _, x := range res.Findings {
		rel, _ := filepath.Rel(f.root, x.Path)
		out = append(out, x.Action+" "+rel)
	}
	return out
}

func (f *fixture) baseline(t *testing.T) Result {
	t.Helper()
	res := f.run(t, false)
	if !res.Baseline || len(res.Findings) != 0 {
		t.Fatalf("first scan: baseline=%v findings=%v", res.Baseline, f.summary(res))
	}
	return res
}

func expectFindings(t *testing.T, f *fixture, res Result, want ...string) {
	t.Helper()
	if got := f.summary(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
}

func TestBaselineThenNoChange(t *testing.T) {
	f := newFixture(t)
	res := f.baseline(t)
	// passwd, motd, later (absent), a.conf, sub/b.conf, flat/x,
	// authorized_keys, and the directories srv/app, srv/app/sub, flat and
	// flat/deeper (listed, not entered: the rule is not recursive)
	if res.Files != 11 || res.Absent != 1 || res.Written != 11 {
		t.Errorf("baseline: files %d absent %d written %d, want 11 1 11", res.Files, res.Absent, res.Written)
	}
	if n, _ := f.store.Len(); n != 11 {
		t.Errorf("store holds %d records, want 11", n)
	}
	if v, _ := f.store.Meta(MetaBaselineNS); v == nil {
		t.Error("baseline time not recorded")
	}
	e, ok, _ := f.store.Get(f.p("etc/passwd"))
	if !ok || e.Kind != "passwd" || e.SHA256 == "" || e.Ino == 0 || len(e.State) == 0 || e.Mode&0o777 != 0o644 {
		t.Errorf("passwd record: %+v", e)
	}
	for _, upd := range []bool{false, true} {
		res = f.run(t, upd)
		if res.Baseline || len(res.Findings) != 0 || res.Written != 0 || res.Pruned != 0 {
			t.Errorf("update=%v: baseline=%v findings=%v written=%d pruned=%d", upd, res.Baseline, f.summary(res), res.Written, res.Pruned)
		}
	}
}

func TestPasswdUserAdded(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	writeFile(t, f.p("etc/passwd"), passwdText+"mallory:x:0:0::/root:/bin/sh\n")
	res := f.run(t, true)
	expectFindings(t, f, res, "modified etc/passwd")
	x := res.Findings[0]
	if x.Kind != "passwd" || !slicesContain(x.Fields, "content") || x.Old == nil || x.New == nil || x.Old.SHA256 == x.New.SHA256 {
		t.Errorf("finding %+v", x)
	}
	var added *consumer.Change
	for i := range x.Changes {
		if x.Changes[i].Type == consumer.ChangeUserAdded && x.Changes[i].Name == "mallory" {
			added = &x.Changes[i]
		}
	}
	if added == nil {
		t.Fatalf("no user-added mallory in %+v", x.Changes)
	}
	if !slicesContain(added.Flags, "uid-0") {
		t.Errorf("mallory's flags %v lack uid-0", added.Flags)
	}
	expectFindings(t, f, f.run(t, true)) // recorded
}

func TestAttributesChanged(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	if err := syscall.Chmod(f.p("etc/motd"), 0o4755); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, true)
	expectFindings(t, f, res, "attributes-changed etc/motd")
	x := res.Findings[0]
	if !reflect.DeepEqual(x.Fields, []string{"mode"}) || x.Old.Mode&0o7777 != 0o644 || x.New.Mode&0o7777 != 0o4755 {
		t.Errorf("finding %+v", x)
	}
	if len(x.Changes) != 1 || x.Changes[0].Type != consumer.ChangeAttributesChanged || !slicesContain(x.Changes[0].Flags, "setuid") {
		t.Errorf("changes %+v", x.Changes)
	}
	// mtime alone is reported; ctime alone (a chmod to the same mode) is not.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(f.p("etc/motd"), old, old); err != nil {
		t.Fatal(err)
	}
	res = f.run(t, true)
	expectFindings(t, f, res, "attributes-changed etc/motd")
	if !reflect.DeepEqual(res.Findings[0].Fields, []string{"mtime"}) {
		t.Errorf("fields %v, want [mtime]", res.Findings[0].Fields)
	}
	time.Sleep(10 * time.Millisecond)
	if err := syscall.Chmod(f.p("etc/motd"), 0o4755); err != nil {
		t.Fatal(err)
	}
	res = f.run(t, true)
	expectFindings(t, f, res)
	if res.Written != 1 {
		t.Errorf("the new ctime was not recorded (written %d)", res.Written)
	}
}

func TestDeleted(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	for _, rel := range []string{"etc/motd", "srv/app/sub/b.conf", "home/alice/.ssh/authorized_keys"} {
		if err := os.Remove(f.p(rel)); err != nil {
			t.Fatal(err)
		}
	}
	res := f.run(t, false)
	expectFindings(t, f, res, "deleted etc/motd", "deleted home/alice/.ssh/authorized_keys", "deleted srv/app/sub/b.conf")
	for _, x := range res.Findings {
		if x.Old == nil || x.New != nil || x.Old.SHA256 == "" && x.Kind != "authorized_keys" {
			t.Errorf("finding %+v", x)
		}
	}
	if res.Pruned != 0 {
		t.Errorf("pruned %d, want 0", res.Pruned)
	}
	res = f.run(t, true)
	expectFindings(t, f, res, "deleted etc/motd", "deleted home/alice/.ssh/authorized_keys", "deleted srv/app/sub/b.conf")
	expectFindings(t, f, f.run(t, true))
	// The file named by a rule stays, as absent; the others went.
	if e, ok, _ := f.store.Get(f.p("etc/motd")); !ok || !e.Absent {
		t.Errorf("motd record %+v %v, want absent", e, ok)
	}
	if _, ok, _ := f.store.Get(f.p("srv/app/sub/b.conf")); ok {
		t.Error("the deleted tree file is still recorded")
	}
	// Back again: created.
	writeFile(t, f.p("etc/motd"), "again\n")
	expectFindings(t, f, f.run(t, true), "created etc/motd")
}

func TestCreated(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	writeFile(t, f.p("srv/app/sub/deep/new.conf"), "new\n")
	writeFile(t, f.p("srv/app/cache/more"), "excluded\n")
	writeFile(t, f.p("flat/deeper/z"), "too deep for a flat rule\n")
	writeFile(t, f.p("home/bob/.ssh/authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@host\n")
	writeFile(t, f.p("etc/later"), passwdText)
	res := f.run(t, true)
	// The new directory is an entry of the tree too; the directories it and
	// the other new files went into are not changed by them (their size and
	// mtime are not compared).
	expectFindings(t, f, res, "created etc/later", "created home/bob/.ssh/authorized_keys", "created srv/app/sub/deep",
		"created srv/app/sub/deep/new.conf")
	byPath := map[string]Finding{}
	for _, x := range res.Findings {
		byPath[x.Path] = x
	}
	// From an absent record (a rule's missing path) and from no record at
	// all, the consumer reports everything as added.
	later := byPath[f.p("etc/later")]
	if later.Kind != "passwd" || countType(later.Changes, consumer.ChangeUserAdded) != 3 || later.Old != nil || later.New == nil {
		t.Errorf("etc/later: %+v", later)
	}
	keys := byPath[f.p("home/bob/.ssh/authorized_keys")]
	if keys.Kind != "authorized_keys" || countType(keys.Changes, consumer.ChangeKeyAdded) != 1 {
		t.Errorf("authorized_keys: %+v", keys)
	}
	if nc := byPath[f.p("srv/app/sub/deep/new.conf")]; nc.Kind != "hash" || len(nc.Changes) != 1 || nc.Changes[0].Type != consumer.ChangeContentChanged {
		t.Errorf("new.conf: %+v", nc)
	}
	expectFindings(t, f, f.run(t, true))
}

func TestReplacedByRename(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	tmp := f.p("etc/passwd.new")
	writeFile(t, tmp, strings.Replace(passwdText, "/bin/bash\n", "/bin/zsh\n", 1))
	if err := os.Rename(tmp, f.p("etc/passwd")); err != nil {
		t.Fatal(err)
	}
	// And a tree file replaced by a symlink: no longer a regular file.
	if err := os.Remove(f.p("srv/app/a.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", f.p("srv/app/a.conf")); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, true)
	expectFindings(t, f, res, "replaced etc/passwd", "replaced srv/app/a.conf")
	x := res.Findings[0]
	if x.Fields[0] != "inode" || x.Old.Ino == x.New.Ino || !slicesContain(x.Fields, "content") {
		t.Errorf("finding %+v", x)
	}
	if len(x.Changes) != 1 || x.Changes[0].Type != consumer.ChangeUserModified || x.Changes[0].Name != "root" {
		t.Errorf("changes %+v", x.Changes)
	}
	if y := res.Findings[1]; !slicesContain(y.Fields, "type") || y.New == nil || y.New.Mode&0o170000 != 0o120000 {
		t.Errorf("symlink finding %+v", y)
	}
	expectFindings(t, f, f.run(t, true))
}

func TestPrunedWhenNoLongerWatched(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	f.rules = f.rules[1:] // etc/passwd no longer watched
	f.rules[2].Exclude = append(f.rules[2].Exclude, "sub")
	res := f.run(t, false)
	expectFindings(t, f, res)
	if res.Pruned != 3 { // passwd, and sub with b.conf
		t.Errorf("pruned %d, want 3", res.Pruned)
	}
	if _, ok, _ := f.store.Get(f.p("etc/passwd")); !ok {
		t.Error("a scan without Update pruned the store")
	}
	res = f.run(t, true)
	if res.Pruned != 3 || len(res.Findings) != 0 {
		t.Errorf("pruned %d, findings %v", res.Pruned, f.summary(res))
	}
	for _, rel := range []string{"etc/passwd", "srv/app/sub", "srv/app/sub/b.conf"} {
		if _, ok, _ := f.store.Get(f.p(rel)); ok {
			t.Errorf("%s still recorded", rel)
		}
	}
	if n, _ := f.store.Len(); n != 8 {
		t.Errorf("%d records, want 8", n)
	}
}

func TestWithoutUpdateTheStoreIsUnchanged(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	writeFile(t, f.p("etc/passwd"), passwdText+"eve:x:1001:1001::/home/eve:/bin/sh\n")
	writeFile(t, f.p("srv/app/new"), "n\n")
	os.Remove(f.p("flat/x"))
	os.Chmod(f.p("etc/motd"), 0o600)
	for i := 0; i < 20; i++ {
		writeFile(t, f.p(fmt.Sprintf("srv/app/many/%02d", i)), "m\n")
	}
	f.store.Close()
	before, err := os.ReadFile(f.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	reopen := func() {
		s, err := state.Open(f.store.Path(), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f.store = s
	}
	reopen()
	r1 := f.run(t, false)
	r2 := f.run(t, false)
	f.store.Close()
	after, _ := os.ReadFile(f.store.Path())
	if !bytes.Equal(before, after) {
		t.Error("scans without Update modified the store file")
	}
	reopen()
	if len(r1.Findings) != 25 || r1.Written != 0 { // with the directory srv/app/many
		t.Errorf("%d findings (%v), written %d", len(r1.Findings), f.summary(r1), r1.Written)
	}
	j1, _ := json.Marshal(r1.Findings)
	j2, _ := json.Marshal(r2.Findings)
	if !bytes.Equal(j1, j2) {
		t.Errorf("two read-only scans differ:\n%s\n%s", j1, j2)
	}
	for i := 1; i < len(r1.Findings); i++ {
		if r1.Findings[i-1].Path >= r1.Findings[i].Path {
			t.Errorf("findings out of order: %s before %s", r1.Findings[i-1].Path, r1.Findings[i].Path)
		}
	}
	r3 := f.run(t, true)
	j3, _ := json.Marshal(r3.Findings)
	if !bytes.Equal(j1, j3) {
		t.Errorf("the updating scan found otherwise:\n%s\n%s", j1, j3)
	}
	expectFindings(t, f, f.run(t, false))
}

const (
	// Real-looking SHA-512 crypt hashes: neither may reach the store.
	secretOld = "$6$Zq3iXbyT8KsmNj4P$4wM9Vq6kq8.8mX1oJ6vN0dYbE3Tq0pQ2yC5sH8fR1uL7nK9aW3eZ0xG5jT2bV6cD4mP8sQ1rU7yI9oA0lF2hK3"
	secretNew = "$6$Pk2LmNq7RsT9vWxY$9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sT9uV8wX7yZ6aB5cD4eF3gH2iJ1kL0mN9oP8qR7sT6uV5wX4yZ3aB2cD1e"
)

func TestShadowHashNeverStored(t *testing.T) {
	f := newFixture(t)
	shadow := f.p("etc/shadow")
	line := func(h string) string {
		return "root:" + h + ":19700:0:99999:7:::\nalice:!:19700:0:99999:7:::\n"
	}
	writeFile(t, shadow, line(secretOld))
	f.rules = append(f.rules, config.Watch{Path: shadow})
	f.baseline(t)
	writeFile(t, shadow, line(secretNew))
	res := f.run(t, true)
	expectFindings(t, f, res, "modified etc/shadow")
	if x := res.Findings[0]; x.Kind != "shadow" || countType(x.Changes, consumer.ChangePasswordChanged) != 1 {
		t.Errorf("finding %+v", x)
	}
	f.store.Close()
	db, err := os.ReadFile(f.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	for _, h := range []string{secretOld, secretNew} {
		for _, part := range []string{h, h[20:]} { // the whole field, the hash proper
			if bytes.Contains(db, []byte(part)) {
				t.Errorf("the store holds %q", part)
			}
			if bytes.Contains(out, []byte(part)) {
				t.Errorf("the findings hold %q", part)
			}
		}
	}
	if !bytes.Contains(db, []byte(shadow)) {
		t.Error("the check is void: the store does not even name the shadow file")
	}
}

func TestInterruptedBaselineIsRedone(t *testing.T) {
	f := newFixture(t)
	// A first scan that died after writing one record.
	if err := f.store.Put(state.Entry{Path: f.p("etc/motd"), Kind: "hash", SHA256: "00"}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetMeta(metaBaselineRunning, []byte("1")); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, false)
	if !res.Baseline || len(res.Findings) != 0 {
		t.Errorf("baseline=%v findings=%v", res.Baseline, f.summary(res))
	}
	if v, _ := f.store.Meta(metaBaselineRunning); v != nil {
		t.Error("the baseline marker stayed")
	}
	expectFindings(t, f, f.run(t, false))
}

func TestRecordsWithoutBaselineAreCompared(t *testing.T) {
	// Records written by someone else (the agent) are not a first run.
	f := newFixture(t)
	if err := f.store.Put(state.Entry{Path: f.p("etc/motd"), Kind: "hash", SHA256: "00", Ino: 1}); err != nil {
		t.Fatal(err)
	}
	res := f.run(t, false)
	if res.Baseline {
		t.Fatal("treated as a baseline")
	}
	if len(res.Findings) != 10 { // motd replaced, 5 files and 4 directories created
		t.Errorf("findings %v", f.summary(res))
	}
}

func TestProgressAndErrors(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	res, err := Run(context.Background(), f.rules, 16, f.store, f.cons, ScanOptions{Progress: &buf, Workers: 3})
	if err != nil || !res.Baseline {
		t.Fatal(err, res.Baseline)
	}
	if s := buf.String(); !strings.Contains(s, "100%") || !strings.Contains(s, "11/11 files") || !strings.HasSuffix(s, "\n") {
		t.Errorf("progress output %q", s)
	}
	if _, err := Scan(context.Background(), []Target{{Path: f.p("etc/motd"), Kind: "nope"}}, f.store, f.cons, ScanOptions{}); err == nil {
		t.Error("an unknown kind was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, f.rules, 16, f.store, f.cons, ScanOptions{}); err == nil {
		t.Error("a cancelled scan succeeded")
	}
}

func TestNonRegularTarget(t *testing.T) {
	f := newFixture(t)
	dir := f.p("etc/somedir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A rule's path that is a symlink is read through (as the watch set
	// does); a target that is not a regular file gives attributes only.
	targets := []Target{{Path: dir, Kind: "hash"}, {Path: f.p("etc/motd"), Kind: "hash"}}
	res, err := Scan(context.Background(), targets, f.store, f.cons, ScanOptions{})
	if err != nil || len(res.Errors) != 0 {
		t.Fatal(err, res.Errors)
	}
	e, ok, _ := f.store.Get(dir)
	if !ok || e.SHA256 != "" || e.State != nil || e.Mode&0o170000 != 0o040000 {
		t.Errorf("directory record %+v", e)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	res, _ = Scan(context.Background(), targets, f.store, f.cons, ScanOptions{})
	expectFindings(t, f, res, "attributes-changed etc/somedir")
}

func countType(cs []consumer.Change, typ string) int {
	n := 0
	for _, c := range cs {
		if c.Type == typ {
			n++
		}
	}
	return n
}

func slicesContain(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestSmallBatchesManyWorkers(t *testing.T) {
	// Batches of 3 and a read-ahead ring of 6 with 8 workers: findings
	// must still come out complete and in path order.
	root := t.TempDir()
	const n = 300
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(root, fmt.Sprintf("d%d/f%03d", i%4, i)), fmt.Sprint(i))
	}
	s := openStore(t)
	cons := testConsumers(t)
	rules := []config.Watch{{Path: root, Recursive: true}}
	opts := ScanOptions{Batch: 3, Workers: 8, Update: true}
	res, err := Run(context.Background(), rules, 0, s, cons, opts)
	if err != nil || !res.Baseline || res.Written != n+5 { // and the root and its 4 directories
		t.Fatalf("baseline: %v %v written %d", err, res.Baseline, res.Written)
	}
	var want []string
	for i := 0; i < n; i += 7 {
		p := filepath.Join(root, fmt.Sprintf("d%d/f%03d", i%4, i))
		writeFile(t, p, "changed")
		want = append(want, p)
	}
	sort.Strings(want)
	res, err = Run(context.Background(), rules, 0, s, cons, opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range res.Findings {
		if x.Action != ActionModified {
			t.Errorf("%s: %s", x.Path, x.Action)
		}
		got = append(got, x.Path)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings\n%v\nwant\n%v", got, want)
	}
	if res.Written != len(want) {
		t.Errorf("written %d, want %d", res.Written, len(want))
	}
}

func TestReadOnlyStoreAndLargeFile(t *testing.T) {
	root := t.TempDir()
	big := filepath.Join(root, "big")
	data := bytes.Repeat([]byte("0123456789abcdef"), (MaxContent+4096)/16)
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	s, err := state.Open(filepath.Join(dir, state.StoreFile), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cons := testConsumers(t)
	rules := []config.Watch{{Path: big}}
	if _, err := Run(context.Background(), rules, 0, s, cons, ScanOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A change past what the consumer sees is still caught by the hash
	// of the whole file.
	data[len(data)-1] ^= 1
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := state.Open(filepath.Join(dir, state.StoreFile), state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	res, err := Run(context.Background(), rules, 0, ro, cons, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Action != ActionModified || !reflect.DeepEqual(res.Findings[0].Fields, []string{"content", "mtime"}) && !reflect.DeepEqual(res.Findings[0].Fields, []string{"content"}) {
		t.Errorf("findings %+v", res.Findings)
	} else if f := res.Findings[0]; len(f.Changes) != 0 || len(f.Problems) != 1 || !strings.Contains(f.Problems[0].Msg, "parse limit") {
		// Never a diff of the first 16 MiB as if they were the file.
		t.Errorf("a file over the parse limit: changes %+v, problems %+v", f.Changes, f.Problems)
	}
	if _, err := Run(context.Background(), rules, 0, ro, cons, ScanOptions{Update: true}); err == nil {
		t.Error("an update of a read-only store succeeded")
	}
}

// TestNewlyWatched: a rule added for files that already exist makes them
// newly watched (Result.Added, recorded with Update), not created; a file
// created where the previous rules looked is still created, and a store
// without recorded rules reports as before.
func TestNewlyWatched(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	writeFile(t, f.p("etc/group"), "root:x:0:\nsudo:x:27:alice\n")
	writeFile(t, f.p("opt/tool/t.conf"), "t=1\n")
	writeFile(t, f.p("srv/app/fresh.conf"), "fresh\n")
	f.rules = append(f.rules, config.Watch{Path: f.p("etc/group")}, config.Watch{Path: f.p("opt/tool"), Recursive: true})

	res := f.run(t, false) // without Update: reported, not recorded
	expectFindings(t, f, res, "created srv/app/fresh.conf")
	if want := []string{f.p("etc/group"), f.p("opt/tool"), f.p("opt/tool/t.conf")}; !reflect.DeepEqual(res.Added, want) {
		t.Fatalf("added %q, want %q", res.Added, want)
	}
	res = f.run(t, true)
	if len(res.Added) != 3 || len(res.Findings) != 1 {
		t.Fatalf("with update: added %q, findings %q", res.Added, f.summary(res))
	}
	// Recorded, rules and all: a clean run, then a creation in the new tree.
	res = f.run(t, true)
	if len(res.Added) != 0 || len(res.Findings) != 0 {
		t.Fatalf("after update: added %q, findings %q", res.Added, f.summary(res))
	}
	writeFile(t, f.p("opt/tool/new.conf"), "n\n")
	expectFindings(t, f, f.run(t, true), "created opt/tool/new.conf")

	// A store written before the rules were kept: files without a record
	// are created, as before, and the rules are recorded from then on.
	if err := f.store.DeleteMeta(MetaRules); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.p("etc/shadow"), "root:*:19700:0:99999:7:::\n")
	f.rules = append(f.rules, config.Watch{Path: f.p("etc/shadow")})
	if res := f.run(t, true); len(res.Added) != 0 {
		t.Fatalf("without recorded rules: added %q", res.Added)
	}
	if b, err := f.store.Meta(MetaRules); err != nil || b == nil {
		t.Fatalf("rules not recorded again: %v", err)
	}
}

// TestAttributeChanges: a user.* xattr added, changed and removed is an
// attributes-changed finding naming it, once (with Update), and its value
// is recorded only as a keyed fingerprint; a record written before
// attributes were kept (nil Attrs) reports nothing and is filled in.
func TestAttributeChanges(t *testing.T) {
	f := newFixture(t)
	f.baseline(t)
	motd := f.p("etc/motd")
	const secret = "user-xattr-secret-value"
	if err := unix.Setxattr(motd, "user.note", []byte(secret), 0); err != nil {
		t.Skipf("%s has no user xattrs: %v", f.root, err) // tmpfs before 6.6
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	run := func() Result {
		res, err := Run(context.Background(), f.rules, 16, f.store, f.cons, ScanOptions{Update: true, Key: key})
		if err != nil || len(res.Errors) > 0 {
			t.Fatal(err, res.Errors)
		}
		return res
	}
	for _, step := range []struct {
		do   func() error
		want *attrs.XattrChange
	}{
		{nil, &attrs.XattrChange{Added: []string{"user.note"}, Removed: []string{}, Changed: []string{}}},
		{func() error { return unix.Setxattr(motd, "user.note", []byte(secret+"2"), 0) },
			&attrs.XattrChange{Added: []string{}, Removed: []string{}, Changed: []string{"user.note"}}},
		{func() error { return unix.Removexattr(motd, "user.note") },
			&attrs.XattrChange{Added: []string{}, Removed: []string{"user.note"}, Changed: []string{}}},
	} {
		if step.do != nil {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
		}
		res := run()
		expectFindings(t, f, res, "attributes-changed etc/motd")
		if x := res.Findings[0]; !reflect.DeepEqual(x.Fields, []string{"xattrs"}) || !reflect.DeepEqual(x.Attributes.Xattrs, step.want) {
			t.Errorf("finding %+v, attributes %+v", x, x.Attributes)
		}
		if e, _, _ := f.store.Get(motd); strings.Contains(fmt.Sprint(e.Attrs), secret) {
			t.Errorf("the store holds the value: %+v", e.Attrs)
		}
		expectFindings(t, f, run())
	}
	// A record without attributes (a version 1 store): nothing, then kept.
	e, _, _ := f.store.Get(motd)
	e.Attrs = nil
	if err := f.store.Put(e); err != nil {
		t.Fatal(err)
	}
	unix.Setxattr(motd, "user.other", []byte("v"), 0)
	expectFindings(t, f, run())
	if e, _, _ := f.store.Get(motd); e.Attrs == nil || e.Attrs.Xattrs["user.other"] == "" {
		t.Errorf("attributes not recorded: %+v", e.Attrs)
	}
}
