package watch

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// listingKernel is the fake kernel with the sensor's Entries, so Replace can
// sweep the entries the kernel made itself.
type listingKernel struct{ *fakeKernel }

func (k listingKernel) Entries() ([]sensor.Entry, error) {
	var out []sensor.Entry
	for key, e := range k.inodes {
		out = append(out, sensor.Entry{Key: key, ID: e.ID, Flags: e.Flags, Depth: e.Depth})
	}
	return out, nil
}

// callsSince returns the kernel calls made after mark that have any of the
// words as an argument (or, for a word with a space, contain it).
func callsSince(k *fakeKernel, mark int, words ...string) []string {
	var out []string
	for _, c := range k.calls[mark:] {
		args := strings.Fields(c)[1:]
	call:
		for _, w := range words {
			if strings.Contains(w, " ") && strings.Contains(c, w) {
				out = append(out, c)
				break
			}
			for _, a := range args {
				if a == w {
					out = append(out, c)
					break call
				}
			}
		}
	}
	return out
}

func mustAdd(t *testing.T, s *Set, rules []config.Watch) {
	t.Helper()
	if errs := s.Add(rules); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func mustReplace(t *testing.T, s *Set, rules []config.Watch, kept, added, removed int) {
	t.Helper()
	res := s.Replace(rules)
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	if res.Kept != kept || res.Added != added || res.Removed != removed {
		t.Fatalf("kept/added/removed = %d/%d/%d, want %d/%d/%d", res.Kept, res.Added, res.Removed, kept, added, removed)
	}
	if p := s.Problems(); len(p) > 0 {
		t.Fatalf("problems: %v", p)
	}
}

// TestReplaceKeepsUnchanged: rules present before and after are not touched
// in the kernel at all; a removed file loses its inode and name entries; a
// new one gets them.
func TestReplaceKeepsUnchanged(t *testing.T) {
	root := tempRoot(t)
	etc := filepath.Join(root, "etc")
	passwd, shadow, group := filepath.Join(etc, "passwd"), filepath.Join(etc, "shadow"), filepath.Join(etc, "group")
	www := filepath.Join(root, "srv", "www")
	for _, p := range []string{passwd, shadow, group, filepath.Join(www, "index.html")} {
		mkfile(t, p)
	}
	k := newFakeKernel()
	s := New(listingKernel{k}, 0, nil)
	keep := []config.Watch{{Path: passwd}, {Path: www, Recursive: true}}
	mustAdd(t, s, append(keep, config.Watch{Path: shadow}))
	pw, idx := fileAt(t, s, passwd), fileAt(t, s, filepath.Join(www, "index.html"))
	sh := fileAt(t, s, shadow)

	mark := len(k.calls)
	mustReplace(t, s, append(keep, config.Watch{Path: group, Source: "conf.d/10.toml"}), 2, 1, 1)
	// Nothing that names a kept inode, directory or id was called.
	if got := callsSince(k, mark, pw.Key.String(), idx.Key.String(), www, "passwd"); len(got) > 0 {
		t.Errorf("kept rules were touched in the kernel:\n%s", strings.Join(got, "\n"))
	}
	wantEntry(t, k, pw.Key, entry{ID: pw.Target, Flags: sensor.WatchFile})
	wantEntry(t, k, idx.Key, entry{ID: idx.Target, Flags: sensor.WatchFile})
	wantNoEntry(t, k, sh.Key)
	if _, ok := k.names[nameKey{dirKeyOf(t, etc), "shadow"}]; ok {
		t.Error("the removed file's name entry is still in the kernel")
	}
	gr := fileAt(t, s, group)
	wantEntry(t, k, keyOf(t, group), entry{ID: gr.Target, Flags: sensor.WatchFile})
	if id := k.names[nameKey{dirKeyOf(t, etc), "group"}]; id != gr.Target {
		t.Errorf("the new file's name entry = %d, want %d", id, gr.Target)
	}
	// /etc still holds watched names (passwd, group).
	wantEntry(t, k, dirKeyOf(t, etc), entry{Flags: sensor.WatchNames})
	if got, want := paths(s), []string{group, passwd, filepath.Join(www, "index.html")}; !reflect.DeepEqual(got, want) {
		t.Errorf("watched %v, want %v", got, want)
	}

	// The same rules again: not one kernel call.
	mark = len(k.calls)
	mustReplace(t, s, append(keep, config.Watch{Path: group}), 3, 0, 0)
	if got := k.calls[mark:]; len(got) > 0 {
		t.Errorf("an unchanged configuration made kernel calls: %v", got)
	}
}

// TestReplaceReleasesDirectory: the last watched name in a directory takes
// the directory's entry with it.
func TestReplaceReleasesDirectory(t *testing.T) {
	root := tempRoot(t)
	etc, opt := filepath.Join(root, "etc"), filepath.Join(root, "opt")
	passwd, conf := filepath.Join(etc, "passwd"), filepath.Join(opt, "app.conf")
	mkfile(t, passwd)
	mkfile(t, conf)
	k := newFakeKernel()
	s := New(k, 0, nil)
	mustAdd(t, s, []config.Watch{{Path: passwd}, {Path: conf}})
	mustReplace(t, s, []config.Watch{{Path: passwd}}, 1, 0, 1)
	wantNoEntry(t, k, dirKeyOf(t, opt))
	wantNoEntry(t, k, keyOf(t, conf))
	wantEntry(t, k, dirKeyOf(t, etc), entry{Flags: sensor.WatchNames})
	if files, trees, anchors := s.Targets(); files != 1 || trees != 0 || anchors != 0 {
		t.Errorf("targets = %d %d %d, want 1 0 0", files, trees, anchors)
	}
}

// TestReplaceHandsFileToTree: a file watched on its own inside a kept tree
// stays watched, now as the tree's, its entry replaced in place.
func TestReplaceHandsFileToTree(t *testing.T) {
	root := tempRoot(t)
	www := filepath.Join(root, "srv", "www")
	idx := filepath.Join(www, "sub", "index.html")
	mkfile(t, idx)
	k := newFakeKernel()
	s := New(k, 0, nil)
	tree := config.Watch{Path: www, Recursive: true}
	mustAdd(t, s, []config.Watch{{Path: idx, Kind: "diff"}, tree})
	if f := fileAt(t, s, idx); f.Kind != "diff" {
		t.Fatalf("before: %+v", f)
	}
	mark := len(k.calls)
	mustReplace(t, s, []config.Watch{tree}, 1, 0, 1)
	f := fileAt(t, s, idx)
	if f.Kind != "hash" || f.Rule.Path != www {
		t.Fatalf("after: %+v, want the tree's", f)
	}
	wantEntry(t, k, keyOf(t, idx), entry{ID: f.Target, Flags: sensor.WatchFile})
	if n := len(callsSince(k, mark, "UnwatchInode "+keyOf(t, idx).String())); n > 0 {
		t.Errorf("the file's entry was deleted before it was handed over: %v", k.calls[mark:])
	}
}

// TestReplaceTreeOnNamesDirectory: a removed tree whose directory also holds
// a kept file's name leaves a names-only entry (replaced, never deleted),
// and its own files go.
func TestReplaceTreeOnNamesDirectory(t *testing.T) {
	root := tempRoot(t)
	app := filepath.Join(root, "etc", "app")
	conf, other := filepath.Join(app, "app.conf"), filepath.Join(app, "other")
	mkfile(t, conf)
	mkfile(t, other)
	k := newFakeKernel()
	s := New(listingKernel{k}, 0, nil)
	file := config.Watch{Path: conf}
	mustAdd(t, s, []config.Watch{file, {Path: app, Recursive: true}})
	treeID := fileAt(t, s, other).Target
	// A file the kernel followed into the tree on its own (a reseed).
	followed := sensor.Key{Dev: 1, Ino: 424242}
	k.inodes[followed] = entry{ID: treeID, Flags: sensor.WatchFile}

	mark := len(k.calls)
	mustReplace(t, s, []config.Watch{file}, 1, 0, 1)
	wantEntry(t, k, dirKeyOf(t, app), entry{Flags: sensor.WatchNames})
	if n := len(callsSince(k, mark, "UnwatchDir", "UnwatchInode "+dirKeyOf(t, app).String())); n > 0 {
		t.Errorf("the directory's entry was deleted though it holds a watched name: %v", k.calls[mark:])
	}
	wantNoEntry(t, k, keyOf(t, other))
	wantNoEntry(t, k, followed)
	c := fileAt(t, s, conf)
	wantEntry(t, k, keyOf(t, conf), entry{ID: c.Target, Flags: sensor.WatchFile})
	if got := paths(s); !reflect.DeepEqual(got, []string{conf}) {
		t.Errorf("watched %v, want only %s", got, conf)
	}
}

// TestReplaceTreeAndAnchor: removing a tree and a glob drops their
// directory entries; adding them back watches again.
func TestReplaceTreeAndAnchor(t *testing.T) {
	root := tempRoot(t)
	tree := filepath.Join(root, "srv")
	home := filepath.Join(root, "home")
	keys := filepath.Join(home, "alice", ".ssh", "authorized_keys")
	mkfile(t, filepath.Join(tree, "a"))
	mkfile(t, keys)
	k := newFakeKernel()
	s := New(k, 0, nil)
	base := config.Watch{Path: filepath.Join(root, "etc-missing", "x")}
	rules := []config.Watch{base, {Path: tree, Recursive: true}, {Path: filepath.Join(home, "*", ".ssh", "authorized_keys")}}
	mustAdd(t, s, rules)
	mustReplace(t, s, rules[:1], 1, 0, 2)
	for _, p := range []string{tree, home} {
		wantNoEntry(t, k, dirKeyOf(t, p))
	}
	wantNoEntry(t, k, keyOf(t, filepath.Join(tree, "a")))
	wantNoEntry(t, k, keyOf(t, keys))
	if _, ok := k.names[nameKey{dirKeyOf(t, filepath.Dir(keys)), "authorized_keys"}]; ok {
		t.Error("the glob's file still has its name entry")
	}
	if files, trees, anchors := s.Targets(); files != 0 || trees != 0 || anchors != 1 {
		t.Errorf("targets = %d %d %d, want only the missing path's anchor", files, trees, anchors)
	}
	mustReplace(t, s, rules, 1, 2, 0)
	if f := fileAt(t, s, keys); f.Kind != "hash" {
		t.Errorf("glob match back: %+v", f)
	}
	fileAt(t, s, filepath.Join(tree, "a"))
	wantEntry(t, k, dirKeyOf(t, home), entry{ID: k.inodes[dirKeyOf(t, home)].ID, Flags: sensor.WatchAnchor, Depth: 3})
}

// TestReplaceDuplicateRuleTakesOver: two rules for one path; removing the
// one that held it leaves the path watched by the other.
func TestReplaceDuplicateRuleTakesOver(t *testing.T) {
	root := tempRoot(t)
	p := filepath.Join(root, "etc", "passwd")
	mkfile(t, p)
	k := newFakeKernel()
	s := New(k, 0, nil)
	mustAdd(t, s, []config.Watch{{Path: p, Kind: "diff"}, {Path: p, Kind: "passwd"}})
	mustReplace(t, s, []config.Watch{{Path: p, Kind: "passwd"}}, 1, 0, 1)
	f := fileAt(t, s, p)
	if f.Kind != "passwd" {
		t.Fatalf("file = %+v, want kind passwd", f)
	}
	wantEntry(t, k, keyOf(t, p), entry{ID: f.Target, Flags: sensor.WatchFile})
	if id := k.names[nameKey{dirKeyOf(t, filepath.Dir(p)), "passwd"}]; id != f.Target {
		t.Errorf("name entry id = %d, want %d", id, f.Target)
	}
}

// TestReplaceOwnerChange: a rule whose expected owner or group changed is
// a new rule, so its files carry the new expectation; the same owner
// written again (another *uint32) is the same rule.
func TestReplaceOwnerChange(t *testing.T) {
	root := tempRoot(t)
	app := filepath.Join(root, "srv", "app")
	mkfile(t, filepath.Join(app, "data"))
	id := func(v uint32) *uint32 { return &v }
	s := New(listingKernel{newFakeKernel()}, 0, nil)
	mustAdd(t, s, []config.Watch{{Path: app, Recursive: true, Owner: "10", OwnerID: id(10)}})
	mustReplace(t, s, []config.Watch{{Path: app, Recursive: true, Owner: "10", OwnerID: id(10)}}, 1, 0, 0)
	mustReplace(t, s, []config.Watch{{Path: app, Recursive: true, Owner: "11", OwnerID: id(11)}}, 0, 1, 1)
	if f := fileAt(t, s, filepath.Join(app, "data")); f.Rule.OwnerID == nil || *f.Rule.OwnerID != 11 {
		t.Errorf("after the owner changed, the file's rule expects %v", f.Rule.OwnerID)
	}
	mustReplace(t, s, []config.Watch{{Path: app, Recursive: true, Owner: "11", OwnerID: id(11), GroupID: id(5)}}, 0, 1, 1)
	if f := fileAt(t, s, filepath.Join(app, "data")); f.Rule.GroupID == nil || *f.Rule.GroupID != 5 {
		t.Errorf("after the group changed, the file's rule expects %v", f.Rule.GroupID)
	}
}

// TestReplaceQueuedRecords: records the kernel matched before a reload,
// still queued, are not lost for a file another target took over, and are
// dropped for a file no longer watched.
func TestReplaceQueuedRecords(t *testing.T) {
	root := tempRoot(t)
	www := filepath.Join(root, "srv", "www")
	idx := filepath.Join(www, "index.html")
	conf := filepath.Join(root, "etc", "app.conf")
	mkfile(t, idx)
	mkfile(t, conf)
	k := newFakeKernel()
	s := New(k, 0, nil)
	tree := config.Watch{Path: www, Recursive: true}
	mustAdd(t, s, []config.Watch{{Path: idx, Kind: "diff"}, tree, {Path: conf}})
	oldIdx, oldConf := fileAt(t, s, idx), fileAt(t, s, conf)
	mustReplace(t, s, []config.Watch{tree}, 1, 0, 2)

	ch, ok := s.Apply(&sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: oldIdx.Target,
		File: oldIdx.Key, Path: "index.html"})
	if !ok || ch.File.Path != idx || ch.Action != "modified" || ch.File.Target == oldIdx.Target {
		t.Errorf("queued write to the handed-over file: %+v %v", ch, ok)
	}
	if ch, ok := s.Apply(&sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: oldConf.Target,
		File: oldConf.Key, Path: "app.conf"}); ok {
		t.Errorf("queued write to a file no longer watched was kept: %+v", ch)
	}
}
