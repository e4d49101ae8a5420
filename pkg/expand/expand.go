// Package expand says what a [[watch]] rule names on disk now: the paths a
// glob matches, a directory's files to the rule's depth, a path that does
// not exist yet, which files a rule's excludes leave out, and a file's
// consumer kind. The startup scan (pkg/scan) and the live watch set
// (pkg/watch) both expand rules here, so that they can never disagree on
// what is watched. The rules chosen are in docs/architecture.md.
package expand

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
)

// Form is what a rule's root is now.
type Form int

const (
	// File is a file (or anything that is not a directory) at the path.
	File Form = iota
	// Dir is a directory: its files are the rule's (Walk).
	Dir
	// Absent is a path with nothing behind it yet: a missing path, a path
	// through a file (ENOTDIR: it can exist once that file is a directory),
	// or a glob match that is a dangling symlink. It is watched as absent
	// until it appears.
	Absent
)

// Root is one path a rule names now: the configured path, or each path its
// glob matches.
type Root struct {
	Path string
	Form Form
}

// HasMeta reports whether a configured path is a glob.
func HasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// Roots lists what a rule names now: for a glob, each match (in
// filepath.Glob's order; none is not an error); otherwise the path itself.
// An error means the rule names nothing that can be watched (an empty path,
// a bad pattern, a path that cannot be looked at).
func Roots(r *config.Watch) ([]Root, error) {
	if r.Path == "" {
		return nil, errors.New("empty path")
	}
	p := filepath.Clean(r.Path)
	if HasMeta(p) {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, err
		}
		out := make([]Root, 0, len(matches))
		for _, m := range matches {
			// Glob found the name, so an error here is a symlink that leads
			// nowhere (or nowhere readable): absent, as the same path written
			// out without a pattern would be.
			st, err := os.Stat(m)
			switch {
			case err != nil:
				out = append(out, Root{m, Absent})
			case st.IsDir():
				out = append(out, Root{m, Dir})
			default:
				out = append(out, Root{m, File})
			}
		}
		return out, nil
	}
	st, err := os.Stat(p)
	switch {
	case err == nil && st.IsDir():
		return []Root{{p, Dir}}, nil
	case err == nil:
		return []Root{{p, File}}, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return []Root{{p, Absent}}, nil
	default:
		return nil, err
	}
}

// GlobPrefix is the fixed part of a glob: the deepest directory above its
// first pattern element.
func GlobPrefix(pattern string) string {
	prefix := filepath.Clean(pattern)
	for HasMeta(prefix) {
		prefix = filepath.Dir(prefix)
	}
	return prefix
}

// Resolve is a configured file path with the symlinks in it resolved, and
// the configured path as link when that differs. A path that does not
// resolve (absent, a dangling symlink) is its own.
func Resolve(p string) (real, link string) {
	if rp, err := filepath.EvalSymlinks(p); err == nil && rp != p {
		return rp, p
	}
	return p, ""
}

// Depth is how many levels below a directory rule r reaches: its direct
// children, or maxDepth (config.DefaultMaxDepth when 0) when recursive.
func Depth(r *config.Watch, maxDepth int) int {
	if !r.Recursive {
		return 1
	}
	return MaxDepth(maxDepth)
}

// MaxDepth is maxDepth, or config.DefaultMaxDepth when it is not set.
func MaxDepth(maxDepth int) int {
	if maxDepth <= 0 {
		return config.DefaultMaxDepth
	}
	return maxDepth
}

// Walk calls fn with every entry below root (a resolved directory) that
// rule r reaches, and root itself: to Depth(r, maxDepth) levels, symlinks
// not followed, excluded paths and directories left out. typ is the entry's
// type as its directory lists it (fs.DirEntry.Type: 0 for a regular file,
// fs.ModeDir, fs.ModeSymlink, fs.ModeNamedPipe, fs.ModeSocket,
// fs.ModeDevice, with fs.ModeCharDevice for a character device). A
// directory at the depth limit is listed (it is an entry of a directory
// the rule reaches) but not entered. A directory that cannot be read is
// returned as a problem and skipped: what it holds is neither watched file
// by file nor, by the scan, reported deleted; the walk goes on elsewhere.
// Nothing is left out for its number: a tree's every entry is listed.
func Walk(r *config.Watch, root string, maxDepth int, fn func(path string, typ fs.FileMode)) []error {
	depth := Depth(r, maxDepth)
	var errs []error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if Excluded(r, p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fn(p, d.Type())
		if d.IsDir() && p != root && Level(root, p) >= depth {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errs
}

// Level is how many path components p is below root (p inside root).
func Level(root, p string) int {
	if p == root {
		return 0
	}
	rel := p[len(root):]
	if root == "/" {
		return strings.Count(rel, "/") + 1
	}
	return strings.Count(rel, "/")
}

// Under reports whether p is root or below it.
func Under(root, p string) bool {
	if p == root {
		return true
	}
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}

// Excluded matches a rule's exclude globs against the path, its base name,
// and every directory above it (so "/srv/www/cache/*" covers all of cache).
func Excluded(r *config.Watch, path string) bool {
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

// identityNames are files whose name alone says what they are, wherever
// they live (a chroot's or a container's /etc, a scratch root).
var identityNames = map[string]consumer.Kind{"passwd": consumer.KindPasswd, "shadow": consumer.KindShadow,
	"group": consumer.KindGroup, "gshadow": consumer.KindGshadow, "sudoers": consumer.KindSudoers,
	"sshd_config":     consumer.KindSSHDConfig,
	"authorized_keys": consumer.KindAuthorizedKeys, "authorized_keys2": consumer.KindAuthorizedKeys}

// Infer is a file's consumer kind from its well-known path
// (consumer.KindFor), then from its base name (passwd, shadow, group,
// gshadow, sudoers, sshd_config, authorized_keys), or "" when neither says.
func Infer(p string) string {
	if k := consumer.KindFor(p); k != "" {
		return string(k)
	}
	return string(identityNames[filepath.Base(p)])
}

// KindFor is Infer, or "hash" when it says nothing.
func KindFor(p string) string {
	if k := Infer(p); k != "" {
		return k
	}
	return string(consumer.KindHash)
}

// KindOf is the consumer kind of a file that rule r names at path (reached
// through link, when it is a symlink's target): the rule's kind, else what
// infer says of the path, else of the link, else "hash". A nil infer infers
// nothing.
func KindOf(r *config.Watch, path, link string, infer func(string) string) string {
	if r.Kind != "" {
		return r.Kind
	}
	if infer != nil {
		if k := infer(path); k != "" {
			return k
		}
		if link != "" {
			if k := infer(link); k != "" {
				return k
			}
		}
	}
	return string(consumer.KindHash)
}

// Problem names the rule a problem belongs to: "watch PATH (SOURCE): err".
func Problem(r *config.Watch, err error) error {
	if r.Source != "" {
		return fmt.Errorf("watch %s (%s): %w", r.Path, r.Source, err)
	}
	return fmt.Errorf("watch %s: %w", r.Path, err)
}
