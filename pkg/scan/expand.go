// Package scan compares watched files with the baseline store in one pass,
// AIDE-style: the first run records a baseline, later runs report what was
// created, modified, deleted, replaced or had its attributes changed, with
// the consumers' semantic changes (a user added, a sudo rule removed...).
// The agent runs it at startup to catch what changed while it was down.
package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
)

// DefaultMaxDepth bounds recursive directories when Expand is given none
// (config's sensor.max_depth default).
const DefaultMaxDepth = 16

// Target is one concrete file to compare.
type Target struct {
	// Path is the file's path, symlinks in the configured path resolved
	// (as the agent's watch set does); it is the store's key.
	Path string `json:"path"`
	// Kind is the consumer kind.
	Kind string `json:"kind"`
	// Link is the configured path when Path was reached through a symlink.
	Link string `json:"link,omitempty"`
}

// identityNames are files whose name alone says what they are, wherever
// they live (a chroot's or a container's /etc, a scratch root).
var identityNames = map[string]string{"passwd": "passwd", "shadow": "shadow", "group": "group",
	"gshadow": "gshadow", "sudoers": "sudoers", "sshd_config": "sshd_config",
	"authorized_keys": "authorized_keys", "authorized_keys2": "authorized_keys"}

// KindFor infers a file's consumer kind: from its well-known path
// (consumer.KindFor), then from its base name (passwd, shadow, group,
// gshadow, sudoers, sshd_config, authorized_keys), else "hash".
func KindFor(p string) string {
	if k := consumer.KindFor(p); k != "" {
		return string(k)
	}
	if k := identityNames[filepath.Base(p)]; k != "" {
		return k
	}
	return string(consumer.KindHash)
}

func kindOf(r *config.Watch, path, link string) string {
	if r.Kind != "" {
		return r.Kind
	}
	k := KindFor(path)
	if k == string(consumer.KindHash) && link != "" {
		k = KindFor(link)
	}
	return k
}

// Expand turns watch rules into concrete files, as the agent's watch set
// does: a file; a missing path (a target that reads as absent); a directory
// (its regular files: direct children, or every level to maxDepth when
// recursive; excludes are matched against the full path, the base name and
// every directory above); a glob (what filepath.Glob matches now, each a
// file or a directory as above). Symlinks are resolved in configured paths
// and not followed inside directories. The result is sorted by path, each
// path once (the first rule naming it sets its kind). Problems (an
// unreadable directory...) are returned alongside; expansion goes on.
func Expand(rules []config.Watch, maxDepth int) ([]Target, []error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
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
	if r.Source != "" {
		err = fmt.Errorf("watch %s (%s): %w", r.Path, r.Source, err)
	} else {
		err = fmt.Errorf("watch %s: %w", r.Path, err)
	}
	e.errs = append(e.errs, err)
}

func (e *expander) add(r *config.Watch, path, link string) {
	if e.seen[path] {
		return
	}
	e.seen[path] = true
	e.out = append(e.out, Target{Path: path, Kind: kindOf(r, path, link), Link: link})
}

func (e *expander) rule(r *config.Watch) {
	if r.Path == "" {
		e.fail(r, errors.New("empty path"))
		return
	}
	p := filepath.Clean(r.Path)
	if hasMeta(p) {
		matches, err := filepath.Glob(p)
		if err != nil {
			e.fail(r, err)
			return
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			switch {
			case err != nil:
				e.file(r, m) // a dangling symlink: absent
			case st.IsDir():
				e.dir(r, m)
			default:
				e.file(r, m)
			}
		}
		return
	}
	st, err := os.Stat(p)
	switch {
	case err == nil && st.IsDir():
		e.dir(r, p)
	case err == nil, errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		e.file(r, p) // present, or absent until it appears
	default:
		e.fail(r, err)
	}
}

// file adds one file, present or not.
func (e *expander) file(r *config.Watch, p string) {
	if excluded(r, p) {
		return
	}
	real, link := p, ""
	if rp, err := filepath.EvalSymlinks(p); err == nil && rp != p {
		real, link = rp, p
	}
	e.add(r, real, link)
}

func (e *expander) dir(r *config.Watch, dir string) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		e.fail(r, err)
		return
	}
	depth := 1
	if r.Recursive {
		depth = e.maxDepth
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			e.fail(r, err)
			if d != nil && d.IsDir() && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if excluded(r, p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != root && level(root, p) >= depth {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			e.add(r, p, "")
		}
		return nil
	})
	if err != nil {
		e.fail(r, err)
	}
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// level is how many path components p is below root (p inside root).
func level(root, p string) int {
	if p == root {
		return 0
	}
	rel := p[len(root):]
	if root == "/" {
		return strings.Count(rel, "/") + 1
	}
	return strings.Count(rel, "/")
}

// under reports whether p is root or below it.
func under(root, p string) bool {
	if p == root {
		return true
	}
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}

// excluded matches a rule's exclude globs against the path, its base name,
// and every directory above it (so "/srv/www/cache/*" covers all of cache),
// as the watch set does.
func excluded(r *config.Watch, path string) bool {
	for _, x := range r.Exclude {
		if ok, _ := filepath.Match(x, filepath.Base(path)); ok {
			return true
		}
		for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
			if ok, _ := filepath.Match(x, p); ok {
				return true
			}
		}
	}
	return false
}

// scope answers "would the rules list this path if it were a regular
// file?", so that a stored path missing from the targets can be told apart:
// a file gone from a watched directory (deleted) or a path no longer
// watched (pruned).
type scope struct {
	maxDepth int
	rules    []scopeRule
}

type scopeRule struct {
	r       *config.Watch
	pattern string   // a glob rule's pattern
	roots   []string // the configured path and what it resolves to
}

func newScope(rules []config.Watch, maxDepth int) *scope {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	s := &scope{maxDepth: maxDepth}
	for i := range rules {
		r := &rules[i]
		if r.Path == "" {
			continue
		}
		p := filepath.Clean(r.Path)
		sr := scopeRule{r: r}
		var cands []string
		if hasMeta(p) {
			sr.pattern = p
			cands, _ = filepath.Glob(p)
		} else {
			sr.roots = append(sr.roots, p)
			cands = []string{p}
		}
		for _, c := range cands {
			if rp, err := filepath.EvalSymlinks(c); err == nil && rp != c {
				sr.roots = append(sr.roots, rp)
			}
		}
		s.rules = append(s.rules, sr)
	}
	return s
}

func (s *scope) covers(p string) bool {
	for i := range s.rules {
		sr := &s.rules[i]
		depth := 1
		if sr.r.Recursive {
			depth = s.maxDepth
		}
		for _, root := range sr.roots {
			if under(root, p) && level(root, p) <= depth && !excludedBelow(sr.r, root, p) {
				return true
			}
		}
		if sr.pattern != "" {
			a := p
			for l := 0; l <= depth; l++ {
				if ok, _ := filepath.Match(sr.pattern, a); ok {
					if !excludedBelow(sr.r, a, p) {
						return true
					}
					break
				}
				if a == "/" {
					break
				}
				a = filepath.Dir(a)
			}
		}
	}
	return false
}

// excludedBelow reports whether the walk from root would have left p out:
// p or a directory between it and root excluded.
func excludedBelow(r *config.Watch, root, p string) bool {
	for a := p; ; a = filepath.Dir(a) {
		if excluded(r, a) {
			return true
		}
		if a == root || a == "/" || a == "." {
			return false
		}
	}
}
