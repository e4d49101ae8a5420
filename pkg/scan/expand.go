// Package scan compares watched files with the baseline store in one pass,
// AIDE-style: the first run records a baseline, later runs report what was
// created, modified, deleted, replaced or had its attributes changed, with
// the consumers' semantic changes (a user added, a sudo rule removed...).
// The agent runs it at startup to catch what changed while it was down.
package scan

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expand"
)

// Target is one concrete file to compare.
type Target struct {
	// Path is the file's path, symlinks in the configured path resolved
	// (as the agent's watch set does); it is the store's key.
	Path string `json:"path"`
	// Kind is the consumer kind.
	Kind string `json:"kind"`
	// Link is the configured path when Path was reached through a symlink.
	Link string `json:"link,omitempty"`
	// Type is the entry's type when it was listed (expand.Walk's typ: 0
	// for a regular file, fs.ModeDir, fs.ModeSymlink, ...); a configured
	// path's is what lstat said then (0 when absent). The scan reads the
	// path again whatever it says: it is for callers that tell entries
	// apart (the live watch set holds regular files and absent paths).
	Type fs.FileMode `json:"-"`
}

// Expand turns watch rules into concrete paths, as the agent's watch set
// does (pkg/expand): a file; a missing path (a target that reads as
// absent); a directory (the directory itself and every entry in it, of any
// type: files, directories, symlinks, FIFOs, sockets, device nodes; direct
// children, or every level to maxDepth when recursive); a glob (each match
// now, a file or a directory as above). The result is sorted by path, each path once (the
// first rule naming it sets its kind). Problems (an unreadable
// directory...) are returned alongside; expansion goes on.
func Expand(rules []config.Watch, maxDepth int) ([]Target, []error) {
	e := &expander{maxDepth: maxDepth, seen: map[string]bool{}}
	for i := range rules {
		e.rule(&rules[i])
	}
	sort.Slice(e.out, func(i, j int) bool { return e.out[i].Path < e.out[j].Path })
	return e.out, e.errs
}

type expander struct {
	maxDepth int
	seen     map[string]bool
	out      []Target
	errs     []error
}

func (e *expander) fail(r *config.Watch, err error) {
	e.errs = append(e.errs, expand.Problem(r, err))
}

func (e *expander) add(r *config.Watch, path, link string, typ fs.FileMode) {
	if e.seen[path] {
		return
	}
	e.seen[path] = true
	e.out = append(e.out, Target{Path: path, Kind: expand.KindOf(r, path, link, expand.Infer), Link: link, Type: typ})
}

func (e *expander) rule(r *config.Watch) {
	roots, err := expand.Roots(r)
	if err != nil {
		e.fail(r, err)
		return
	}
	for _, root := range roots {
		if root.Form == expand.Dir {
			e.dir(r, root.Path)
			continue
		}
		// A file, present or absent until it appears.
		if expand.Excluded(r, root.Path) {
			continue
		}
		real, link := expand.Resolve(root.Path)
		var typ fs.FileMode
		if st, err := os.Lstat(real); err == nil {
			typ = st.Mode().Type()
		}
		e.add(r, real, link, typ)
	}
}

func (e *expander) dir(r *config.Watch, dir string) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		e.fail(r, err)
		return
	}
	for _, err := range expand.Walk(r, root, e.maxDepth, func(p string, typ fs.FileMode) { e.add(r, p, "", typ) }) {
		e.fail(r, err)
	}
}
