//go:build privileged

package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
)

// TestNewlyWatchedIsNotCreated: an existing file added to the configuration
// is newly watched, not new. A restart (and a reload) gives it a baseline
// quietly and names it once, in a watch-added record (config-reloaded's
// vigil.reload.watch_added); a file created while vigil was down in a place
// that was watched is still reported created.
func TestNewlyWatchedIsNotCreated(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "etc/passwd")
	grp := filepath.Join(dir, "etc/group")
	drop := filepath.Join(dir, "drop")
	old := filepath.Join(drop, "old.conf")
	reloaded := filepath.Join(dir, "etc/gshadow")
	for p, c := range map[string]string{pw: passwd0, grp: group0, old: "a = 1\n", reloaded: gshadow0} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "vigil.toml")
	head := fmt.Sprintf("[agent]\nstate_dir = %q\n[output]\nstdout = false\n[[watch]]\npath = %q\n",
		filepath.Join(dir, "state"), pw)
	more := fmt.Sprintf("[[watch]]\npath = %q\n[[watch]]\npath = %q\nrecursive = true\n", grp, drop)
	load := func(text string) *config.Config {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	actions := func(r *records, p string) []string {
		var out []string
		for _, x := range r.since(0, func(x rec) bool { return x.s("file.path") == p }) {
			out = append(out, x.s("event.action"))
		}
		return out
	}
	added := func(r rec) []string {
		var out []string
		list, _ := r.get("vigil.watch_added.paths").([]any)
		for _, p := range list {
			out = append(out, fmt.Sprint(p))
		}
		return out
	}

	// The first start: passwd only.
	_, stop := runAgent(t, load(head))
	stop()

	// group and the drop directory (with old.conf) join the configuration.
	r, stop := runAgent(t, load(head+more))
	stop()
	for _, p := range []string{grp, old} {
		if got := actions(r, p); len(got) > 0 {
			t.Errorf("%s, newly watched, reported %v", p, got)
		}
	}
	for _, x := range r.since(0, func(x rec) bool { return hasChange(x, "group-added", "") != nil }) {
		t.Errorf("groups reported added: %s", x)
	}
	wa := r.since(0, func(x rec) bool { return x.s("event.action") == "watch-added" })
	// The directory is an entry of its rule too.
	if len(wa) != 1 || strings.Join(added(wa[0]), " ") != drop+" "+old+" "+grp || wa[0].s("event.kind") != "state" ||
		wa[0].s("vigil.watch_added.count") != "3" {
		t.Errorf("want one watch-added record naming %s, %s and %s: %v", drop, old, grp, wa)
	}
	ready := r.find(func(x rec) bool { return x.s("event.action") == "agent-ready" })
	if seq := func(x rec) float64 { f, _ := x.get("event.sequence").(float64); return f }; len(wa) == 1 && ready != nil && seq(wa[0]) > seq(ready) {
		t.Errorf("watch-added after agent-ready: %s", wa[0])
	}

	// While stopped, a file is created in the watched directory: created.
	// A clean restart otherwise names nothing as added.
	fresh := filepath.Join(drop, "new.conf")
	if err := os.WriteFile(fresh, []byte("b = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := agent.NewHandle()
	r, stop = startAgent(t, agent.Options{Config: load(head + more), Handle: h,
		LoadConfig: func() (*config.Config, error) { return config.Load(cfgPath) }})
	if got := actions(r, fresh); strings.Join(got, " ") != "created" {
		t.Errorf("%s, created while vigil was down, reported %v", fresh, got)
	}
	if wa := r.find(func(x rec) bool { return x.s("event.action") == "watch-added" }); wa != nil {
		t.Errorf("a restart with the same rules reported %s", wa)
	}

	// A reload adds gshadow: config-reloaded names it, nothing else does.
	mark := r.mark()
	load(head + more + fmt.Sprintf("[[watch]]\npath = %q\n", reloaded))
	if _, err := h.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	cr := r.wait(t, mark, "config-reloaded", func(x rec) bool { return x.s("event.action") == "config-reloaded" })
	if got, _ := cr.get("vigil.reload.watch_added.paths").([]any); len(got) != 1 || got[0] != reloaded {
		t.Errorf("config-reloaded does not name %s as newly watched: %s", reloaded, cr)
	}
	stop()
	if got := actions(r, reloaded); len(got) > 0 {
		t.Errorf("%s, added by a reload, reported %v", reloaded, got)
	}

	// The next start knows gshadow was watched: nothing to add or report.
	r, stop = runAgent(t, load(head+more+fmt.Sprintf("[[watch]]\npath = %q\n", reloaded)))
	stop()
	for _, x := range r.since(0, func(x rec) bool {
		return x.s("event.action") == "watch-added" || x.s("vigil.origin") == "startup"
	}) {
		t.Errorf("a restart after the reload reported %s", x)
	}
}
