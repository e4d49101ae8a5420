//go:build privileged

package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenameIntoPlace: a tool writes a temporary name in a watched tree and
// renames it to the name that matters (an editor's atomic save, a drop-in
// written as .name.XXXX). The record for the final name carries the
// semantic changes (compared with what that name held: nothing) and the
// rename's actor, whether vigil read the temporary file before the rename or
// not; no record for the temporary name reports the content as removed.
func TestRenameIntoPlace(t *testing.T) {
	seq := func(x rec) float64 { f, _ := x.get("event.sequence").(float64); return f }
	needAgent(t)
	dir := filepath.Join(root, "etc/sudoers.d")
	cases := []struct {
		name string
		// run writes tmp and renames it to final; wait is called between
		// the two steps when the case needs to.
		run func(t *testing.T, tmp, final, rule string, wait func())
	}{
		{"renamed after the temporary file was read", func(t *testing.T, tmp, final, rule string, wait func()) {
			sh(t, fmt.Sprintf("printf '%%s\\n' '%s' > %s", rule, tmp))
			wait()
			sh(t, fmt.Sprintf("mv %s %s", tmp, final))
		}},
		{"written and renamed at once", func(t *testing.T, tmp, final, rule string, wait func()) {
			sh(t, fmt.Sprintf("printf '%%s\\n' '%s' > %s && mv %s %s", rule, tmp, tmp, final))
		}},
		{"cp then mv", func(t *testing.T, tmp, final, rule string, wait func()) {
			src := filepath.Join(t.TempDir(), "src")
			if err := os.WriteFile(src, []byte(rule+"\n"), 0o440); err != nil {
				t.Fatal(err)
			}
			sh(t, fmt.Sprintf("cp %s %s && mv %s %s", src, tmp, tmp, final))
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("mover%d", i)
			final := filepath.Join(dir, user)
			tmp := filepath.Join(dir, "."+user+".Xq3v9T")
			rule := user + " ALL=(ALL) NOPASSWD: ALL"
			mark := recs.mark()
			c.run(t, tmp, final, rule, func() {
				recs.wait(t, mark, "the temporary file's creation", forPath(tmp, "created"))
			})
			r := recs.wait(t, mark, "the final name's record", func(r rec) bool {
				return r.s("file.path") == final && (r.s("event.action") == "renamed" || r.s("event.action") == "created" ||
					r.s("vigil.origin") == "recovered")
			})
			ch := hasChange(r, "sudo-rule-added", user)
			if ch == nil || !flagged(ch, "nopasswd") {
				t.Errorf("the record for %s lacks the NOPASSWD rule added: %s", final, r)
			}
			if r.s("process.name") != "mv" || r.s("user.id") != "0" {
				t.Errorf("the record for %s does not name mv as its actor: %s", final, r)
			}
			if r.s("event.action") == "renamed" && r.s("vigil.source_path") != tmp {
				t.Errorf("renamed without its source %s: %s", tmp, r)
			}
			// A later coalesced write closes its window after any burst
			// still held for the temporary name: once its record is out,
			// every record the sequence caused is too.
			sentinel := filepath.Join(root, "srv/tree/sentinel-"+user)
			sh(t, "echo x >> "+sentinel)
			recs.wait(t, mark, "the sentinel", func(r rec) bool { return r.s("file.path") == sentinel })
			sh(t, "echo y >> "+sentinel)
			recs.wait(t, mark, "the sentinel's write", forPath(sentinel, "modified"))
			for _, x := range recs.since(mark, func(r rec) bool { return strings.HasPrefix(r.s("file.path"), dir) }) {
				if hasChange(x, "sudo-rule-removed", "") != nil {
					t.Errorf("a record reports the rule removed: %s", x)
				}
				// What happened to the temporary name while vigil could read
				// it is its own (cp's write and chmod); nothing after the
				// rename's record.
				if x.s("file.path") == tmp && seq(x) > seq(r) {
					t.Errorf("a %s record for the temporary name after the rename: %s", x.s("event.action"), x)
				}
				if x.s("file.path") == final && seq(x) != seq(r) {
					t.Errorf("a second record for the final name: %s", x)
				}
			}
			sh(t, "rm "+final) // by another process: the agent ignores its own
		})
	}
}

// TestRenameOverExisting: the same tools saving over a name that exists in
// the watched tree: one replaced record for the final name, compared with
// the file it replaced (the rule swapped), and nothing after it for the
// temporary name.
func TestRenameOverExisting(t *testing.T) {
	seq := func(x rec) float64 { f, _ := x.get("event.sequence").(float64); return f }
	needAgent(t)
	dir := filepath.Join(root, "etc/sudoers.d")
	final := filepath.Join(dir, "swapper")
	tmp := filepath.Join(dir, ".swapper.Zk4m1Q")
	// The existing file arrives whole (written outside, moved in), so no
	// write to it is still gathered when the tool replaces it.
	src := filepath.Join(t.TempDir(), "swapper")
	mark := recs.mark()
	sh(t, fmt.Sprintf("printf '%%s\\n' 'swapper ALL=(ALL) /usr/bin/true' > %s && mv %s %s", src, src, final))
	defer sh(t, "rm "+final)
	recs.wait(t, mark, "the existing file's arrival", func(r rec) bool {
		return r.s("file.path") == final && hasChange(r, "sudo-rule-added", "swapper") != nil
	})
	mark = recs.mark()
	sh(t, fmt.Sprintf("printf '%%s\\n' 'swapper ALL=(ALL) NOPASSWD: ALL' > %s", tmp))
	recs.wait(t, mark, "the temporary file's creation", forPath(tmp, "created"))
	sh(t, fmt.Sprintf("mv %s %s", tmp, final))
	r := recs.wait(t, mark, "the final name's record", func(r rec) bool {
		return r.s("file.path") == final && r.s("event.action") != "created"
	})
	if a := r.s("event.action"); a != "replaced" && a != "renamed" {
		t.Errorf("want replaced (or renamed, from %s): %s", tmp, r)
	}
	if ch := hasChange(r, "sudo-rule-added", "swapper"); ch == nil || !flagged(ch, "nopasswd") ||
		hasChange(r, "sudo-rule-removed", "swapper") == nil || r.s("process.name") != "mv" {
		t.Errorf("the replaced record lacks the rule swapped or its actor: %s", r)
	}
	sentinel := filepath.Join(root, "srv/tree/sentinel-swapper")
	sh(t, "echo x >> "+sentinel)
	recs.wait(t, mark, "the sentinel", func(r rec) bool { return r.s("file.path") == sentinel })
	sh(t, "echo y >> "+sentinel)
	recs.wait(t, mark, "the sentinel's write", forPath(sentinel, "modified"))
	for _, x := range recs.since(mark, func(r rec) bool { return r.s("file.path") == tmp || r.s("file.path") == final }) {
		if x.s("file.path") == tmp && seq(x) > seq(r) || x.s("file.path") == final && seq(x) != seq(r) {
			t.Errorf("another record: %s", x)
		}
	}
}
