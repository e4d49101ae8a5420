// Package mounts reads the mount table (/proc/self/mountinfo) and says
// which mount a path is seen through: the deepest mountpoint at or above
// it, the top one where mounts are stacked. The baseline (pkg/scan) records
// it for every watched path, so that a mount made over a watched file or
// directory while vigil was down (a bind mount of another file over
// /etc/passwd, an overlay over /etc/sudoers.d) is reported, and so is its
// removal.
package mounts

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo, as recorded and reported.
type Mount struct {
	// ID is the mount's id (unique while it exists; ids are reused and
	// change across reboots, so comparisons leave it out).
	ID int `json:"id"`
	// Parent is the id of the mount it is mounted on.
	Parent int `json:"-"`
	// Dev is the filesystem's device as major:minor.
	Dev string `json:"dev"`
	// Root is the path inside the filesystem that is mounted here: "/" for
	// a whole filesystem, the file or directory for a bind mount of part
	// of one.
	Root string `json:"root"`
	// Mountpoint is where it is mounted, as this process sees paths.
	Mountpoint string `json:"mountpoint"`
	// FSType and Source are the filesystem type and the mount source
	// ("/dev/sda1", "tmpfs", "overlay").
	FSType string `json:"fstype"`
	Source string `json:"source"`
	// Bind is set when what is mounted is also seen elsewhere: a part of a
	// filesystem (Root is not "/"), or a filesystem mounted earlier at
	// another place (SourcePath).
	Bind bool `json:"bind,omitempty"`
	// SourcePath is where a bind mount's content is seen in this mount
	// namespace (another mount of the same filesystem, mounted earlier,
	// whose root holds Root): "/tmp/fake" for `mount --bind /tmp/fake
	// /etc/passwd`. Empty when no such mount is visible.
	SourcePath string `json:"source_path,omitempty"`
	// Layers are an overlay's lowerdir, upperdir (and workdir) options.
	Layers []string `json:"layers,omitempty"`
	// selfBind: a bind mount of a directory onto itself (SourcePath is the
	// mountpoint): it shows what was there already, so it shadows nothing.
	// systemd's ProtectSystem=, ProtectHome= and ReadOnlyPaths= make such
	// mounts in a service's namespace.
	selfBind bool
}

// Same reports whether two mounts show the same thing at the same place:
// mountpoint, filesystem type, source and root (not the id or the device
// number, which change across reboots).
func (m *Mount) Same(o *Mount) bool {
	if m == nil || o == nil {
		return m == o
	}
	return m.Mountpoint == o.Mountpoint && m.FSType == o.FSType && m.Source == o.Source && m.Root == o.Root
}

// Describe says what a mount is in words: "a bind mount of /tmp/fake
// (tmpfs, source tmpfs) on /etc/passwd", "an overlay mount (source overlay,
// lowerdir=..., upperdir=...) on /etc/sudoers.d", "ext4 /dev/sda1 on /".
func (m *Mount) Describe() string {
	switch {
	case m.Bind && m.SourcePath != "":
		return fmt.Sprintf("a bind mount of %s (%s, source %s) on %s", m.SourcePath, m.FSType, m.Source, m.Mountpoint)
	case m.Bind:
		return fmt.Sprintf("a bind mount of %s in %s (%s) on %s", m.Root, m.Source, m.FSType, m.Mountpoint)
	case len(m.Layers) > 0:
		return fmt.Sprintf("an %s mount (source %s, %s) on %s", m.FSType, m.Source, strings.Join(m.Layers, ", "), m.Mountpoint)
	}
	return fmt.Sprintf("%s %s on %s", m.FSType, m.Source, m.Mountpoint)
}

// Table is a mount table: the mounts at each mountpoint, top first.
type Table struct {
	at map[string][]*Mount
}

// Read reads /proc/self/mountinfo.
func Read() (*Table, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mount table: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("mount table: %w", err)
	}
	return t, nil
}

// Parse parses mountinfo (proc(5)).
func Parse(r io.Reader) (*Table, error) {
	var all []*Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		all = append(all, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return build(all), nil
}

// parseLine parses "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3
// /dev/root rw,errors=continue".
func parseLine(line string) (*Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
		return nil, fmt.Errorf("malformed mountinfo line %q", line)
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("malformed mount ids in %q", line)
	}
	m := &Mount{ID: id, Parent: parent, Dev: f[2], Root: unescape(f[3]), Mountpoint: unescape(f[4]),
		FSType: unescape(f[sep+1]), Source: unescape(f[sep+2])}
	if m.FSType == "overlay" && sep+3 < len(f) {
		for _, o := range strings.Split(f[sep+3], ",") {
			if strings.HasPrefix(o, "lowerdir") || strings.HasPrefix(o, "upperdir") || strings.HasPrefix(o, "workdir") {
				m.Layers = append(m.Layers, unescape(o))
			}
		}
	}
	return m, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space, \011, \012,
// \134).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// build orders the mounts at each mountpoint, top first, and works out
// bind mounts.
func build(all []*Mount) *Table {
	t := &Table{at: map[string][]*Mount{}}
	for _, m := range all {
		t.at[m.Mountpoint] = append(t.at[m.Mountpoint], m)
	}
	for mp, ms := range t.at {
		if len(ms) > 1 {
			t.at[mp] = stack(ms)
		}
	}
	for _, m := range all {
		var src *Mount
		for _, o := range all {
			if o.ID >= m.ID || o.Dev != m.Dev || !under2(o.Root, m.Root) || under2(m.Mountpoint, o.Mountpoint) && o.Mountpoint != m.Mountpoint {
				continue
			}
			if src == nil || len(o.Root) > len(src.Root) || (len(o.Root) == len(src.Root) && len(o.Mountpoint) < len(src.Mountpoint)) {
				src = o
			}
		}
		if src != nil {
			rel := strings.TrimPrefix(m.Root, src.Root)
			m.SourcePath = filepath.Join(src.Mountpoint, rel)
		}
		m.Bind = m.Root != "/" || src != nil
		m.selfBind = src != nil && m.SourcePath == m.Mountpoint
	}
	return t
}

// stack orders the mounts at one mountpoint top first: a mount sits on the
// one whose id is its parent; ties (none found) keep the later in file
// order on top.
func stack(ms []*Mount) []*Mount {
	on := map[int]bool{} // ids another mount here sits on
	byID := map[int]*Mount{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	for _, m := range ms {
		if byID[m.Parent] != nil && m.Parent != m.ID {
			on[m.Parent] = true
		}
	}
	var top *Mount
	for _, m := range ms {
		if !on[m.ID] {
			top = m
		}
	}
	out := []*Mount{}
	seen := map[int]bool{}
	for m := top; m != nil && !seen[m.ID]; m = byID[m.Parent] {
		seen[m.ID] = true
		out = append(out, m)
	}
	for _, m := range ms { // anything the chain did not reach, below it
		if !seen[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

// under2 reports whether p is root or below it (both clean and absolute).
func under2(root, p string) bool {
	if p == root || root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}

// Cover is the mount path p (clean, absolute) is seen through: the top
// mount at the deepest mountpoint at or above it, passing over bind mounts
// of a directory onto itself (they show what is beneath them); nil when
// none is (a table without "/", or a path outside this process's root).
func (t *Table) Cover(p string) *Mount {
	if t == nil {
		return nil
	}
	for {
		for _, m := range t.at[p] {
			if !m.selfBind {
				return m
			}
		}
		if p == "/" || p == "." || p == "" {
			return nil
		}
		p = filepath.Dir(p)
	}
}

// Len is the number of mountpoints.
func (t *Table) Len() int { return len(t.at) }

// OfType is the mount of a filesystem type at the shortest mountpoint (the
// cgroup2 hierarchy: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid
// host); nil when there is none.
func (t *Table) OfType(fstype string) *Mount {
	var best *Mount
	for mp, ms := range t.at {
		for _, m := range ms {
			if m.FSType == fstype && (best == nil || len(mp) < len(best.Mountpoint) ||
				len(mp) == len(best.Mountpoint) && mp < best.Mountpoint) {
				best = m
			}
		}
	}
	return best
}
