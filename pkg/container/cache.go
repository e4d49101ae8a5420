package container

import (
	"errors"
	"fmt"
	"github.com/vigil-fim/vigil/pkg/mounts"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxEntries bounds the cache: past it, the next walk starts it afresh
// from what cgroupfs holds (removed cgroups leave no record).
const MaxEntries = 1 << 16

// rewalkEvery bounds how often a miss walks cgroupfs again.
const rewalkEvery = time.Second

// DefaultRuncRoots are the state directories runc keeps a container's
// state in (<root>/<id>/): runc's default for root. (containerd's and
// docker's shims give runc roots of their own, but their containers'
// cgroups already name their runtime.)
var DefaultRuncRoots = []string{"/run/runc"}

// Cache maps the default hierarchy's cgroup ids to their paths, and the
// paths to containers. Safe for concurrent use: the sensor's reader adds
// the kernel's records while the pipeline resolves. The zero Cache has no
// mount to walk and is filled by Add alone.
type Cache struct {
	// Mount is the cgroup2 mount walked ("" when the host has none:
	// only the kernel's records fill the cache).
	Mount string
	// RuncRoots are asked whether a 64-hex or otherwise unclaimed cgroup
	// name is a container runc runs (nil: DefaultRuncRoots). Set before
	// use.
	RuncRoots []string

	mu       sync.Mutex
	paths    map[uint64]string
	infos    map[uint64]Info
	lastWalk time.Time
	walks    int
}

// New returns a cache of the cgroup2 hierarchy mounted at mount ("" finds
// it in /proc/self/mountinfo), seeded by one walk.
func New(mount string) (*Cache, error) {
	if mount == "" {
		m, err := Cgroup2Mount()
		if err != nil {
			return nil, err
		}
		mount = m
	}
	c := &Cache{Mount: mount, paths: map[uint64]string{}, infos: map[uint64]Info{}}
	if mount == "" {
		return c, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.walk(); err != nil {
		return nil, err
	}
	return c, nil
}

// Cgroup2Mount finds where the cgroup2 hierarchy is mounted (/sys/fs/cgroup
// on a unified host, /sys/fs/cgroup/unified on a hybrid one); "" when it
// is not mounted.
func Cgroup2Mount() (string, error) {
	tb, err := mounts.Read()
	if err != nil {
		return "", err
	}
	if m := tb.OfType("cgroup2"); m != nil {
		return m.Mountpoint, nil
	}
	return "", nil
}

// walk reads every cgroup directory: on cgroup2 a directory's inode number
// is its cgroup's id. Called with mu held.
func (c *Cache) walk() error {
	c.lastWalk = time.Now()
	c.walks++
	if c.paths == nil || len(c.paths) >= MaxEntries {
		c.paths = map[uint64]string{}
		c.infos = map[uint64]Info{}
	}
	root := filepath.Clean(c.Mount)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed during the walk is not an error.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if p == root {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if old, ok := c.paths[st.Ino]; !ok || old != rel {
			c.paths[st.Ino] = rel
			delete(c.infos, st.Ino)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walking cgroupfs at %s: %w", c.Mount, err)
	}
	return nil
}

// Add records a cgroup the kernel reported created.
func (c *Cache) Add(id uint64, path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paths == nil || len(c.paths) >= MaxEntries {
		c.paths = map[uint64]string{}
		c.infos = map[uint64]Info{}
		c.lastWalk = time.Time{} // the next miss walks
	}
	c.paths[id] = path
	// Read now, while the runtime is making the container: runc's state
	// directory exists from before it makes the cgroup until the
	// container is deleted, which may be before a short-lived container's
	// last record is read.
	c.infos[id] = c.infoOf(path)
}

// Path returns a cgroup id's path. A miss walks cgroupfs again (at most
// once a second): the record of the cgroup's creation may have been lost,
// or the cache started afresh.
func (c *Cache) Path(id uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.path(id)
}

func (c *Cache) path(id uint64) (string, bool) {
	if p, ok := c.paths[id]; ok {
		return p, true
	}
	if c.Mount == "" || id == 0 || time.Since(c.lastWalk) < rewalkEvery {
		return "", false
	}
	if err := c.walk(); err != nil {
		return "", false
	}
	p, ok := c.paths[id]
	return p, ok
}

// Resolve returns a cgroup id's path and the container it names. The
// container is read once per id, when the kernel reports the cgroup made
// (Add) or else at the first Resolve: a 64-hex (or otherwise unclaimed)
// name is runc's when runc's state directory holds a container of that id
// at that moment.
func (c *Cache) Resolve(id uint64) (string, Info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.path(id)
	if !ok {
		return "", Info{}, false
	}
	if info, ok := c.infos[id]; ok {
		return p, info, true
	}
	info := c.infoOf(p)
	c.infos[id] = info
	return p, info, true
}

// infoOf parses a path, and asks runc's state directories about the names
// the path does not tie to a runtime.
func (c *Cache) infoOf(p string) Info {
	info := Parse(p)
	if info.Runtime == "" {
		if rid, ok := c.runc(p); ok {
			info.ID, info.Runtime = rid, Runc
		}
	}
	return info
}

// runc finds the innermost component of p that names a container in one
// of runc's state directories (<root>/<id>/, made before the container's
// cgroup, removed when it is deleted): runc, given no cgroupsPath, names
// the cgroup after the container (/<id>).
func (c *Cache) runc(p string) (string, bool) {
	roots := c.RuncRoots
	if roots == nil {
		roots = DefaultRuncRoots
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		name := parts[i]
		if name == "" || name == "." || name == ".." {
			continue
		}
		for _, r := range roots {
			if fi, err := os.Stat(filepath.Join(r, name)); err == nil && fi.IsDir() {
				return name, true
			}
		}
	}
	return "", false
}

// Walks counts the walks of cgroupfs (the first at New included).
func (c *Cache) Walks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.walks
}
