package scan

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigil-fim/vigil/pkg/mounts"
	"github.com/vigil-fim/vigil/pkg/state"
)

// MetaMounts holds the mounts the watched paths were seen through at the
// last scan that wrote the store (SaveMounts): one per mountpoint, only
// those that covered a watched path.
const MetaMounts = "mounts"

// MountChange is how the mount a path is seen through changed.
type MountChange struct {
	// Action is ActionShadowed, ActionUncovered or ActionRemounted.
	Action string `json:"action"`
	// Old and New are the mount it was and is seen through (nil: none
	// known).
	Old *mounts.Mount `json:"old,omitempty"`
	New *mounts.Mount `json:"new,omitempty"`
}

// Line describes the change in words (vigil scan's text output).
func (c *MountChange) Line() string {
	switch {
	case c == nil:
		return ""
	case c.Action == ActionShadowed && c.New != nil:
		return "now shadowed by " + c.New.Describe()
	case c.Action == ActionUncovered && c.Old != nil && c.New != nil:
		return "uncovered: " + c.Old.Describe() + " is gone; seen through " + c.New.Describe() + " again"
	case c.Old != nil && c.New != nil:
		return "remounted: " + c.Old.Describe() + " is now " + c.New.Describe()
	}
	return "mount changed"
}

// mountScan compares the mount each target is seen through with the one
// recorded. It is used by the comparing goroutine only.
type mountScan struct {
	cur *mounts.Table
	// old are the recorded mounts by mountpoint (nil: none recorded, a
	// baseline or a store written before mounts were kept: nothing is
	// compared, and they are recorded quietly).
	old map[string]*mounts.Mount
	// used are the current mounts that cover a target, to record.
	used map[string]*mounts.Mount
	// moved are the targets whose mount changed, with the change, so that
	// the entries below a target that reports one do not repeat it.
	moved map[string]string
}

// newMountScan reads the mount table and the recorded mounts. A mount
// table that cannot be read is returned as an error with a scanner that
// compares nothing and records nothing (the recorded mounts stay).
func newMountScan(store *state.Store, baseline bool) (*mountScan, error) {
	m := &mountScan{used: map[string]*mounts.Mount{}, moved: map[string]string{}}
	cur, err := mounts.Read()
	if err != nil {
		return m, err
	}
	m.cur = cur
	if baseline {
		return m, nil
	}
	b, err := store.Meta(MetaMounts)
	if err != nil || b == nil {
		return m, err
	}
	var rec []*mounts.Mount
	if err := json.Unmarshal(b, &rec); err != nil {
		return m, fmt.Errorf("scan: the recorded mounts: %w", err)
	}
	m.old = make(map[string]*mounts.Mount, len(rec))
	for _, x := range rec {
		m.old[x.Mountpoint] = x
	}
	return m, nil
}

// oldCover is the recorded mount at the deepest mountpoint at or above p.
func (m *mountScan) oldCover(p string) *mounts.Mount {
	for {
		if x, ok := m.old[p]; ok {
			return x
		}
		if p == "/" || p == "." || p == "" {
			return nil
		}
		p = filepath.Dir(p)
	}
}

// change is how the mount path is seen through changed since it was
// recorded; nil when it did not, when nothing was recorded, or when the
// directory above it is a target that reported the same change (an overlay
// over a watched tree is reported once, on the tree's directory). Targets
// must come in path order.
func (m *mountScan) change(path string) *MountChange {
	if m.cur == nil {
		return nil
	}
	nw := m.cur.Cover(path)
	if nw != nil {
		m.used[nw.Mountpoint] = nw
	}
	if m.old == nil {
		return nil
	}
	od := m.oldCover(path)
	if od == nil || nw == nil || od.Same(nw) {
		return nil
	}
	c := &MountChange{Old: od, New: nw}
	switch {
	case nw.Mountpoint == od.Mountpoint:
		c.Action = ActionRemounted
	case len(nw.Mountpoint) > len(od.Mountpoint):
		c.Action = ActionShadowed
	default:
		c.Action = ActionUncovered
	}
	key := od.Mountpoint + "\x00" + od.Source + "\x00" + nw.Mountpoint + "\x00" + nw.Source + "\x00" + nw.Root
	m.moved[path] = key
	if m.moved[filepath.Dir(path)] == key {
		return nil
	}
	return c
}

// save records the mounts the targets were seen through.
func (m *mountScan) save(store *state.Store) error {
	if m.cur == nil {
		return nil
	}
	return saveMounts(store, m.used)
}

func saveMounts(store *state.Store, used map[string]*mounts.Mount) error {
	rec := make([]*mounts.Mount, 0, len(used))
	for _, x := range used {
		rec = append(rec, x)
	}
	sort.Slice(rec, func(i, j int) bool { return rec[i].Mountpoint < rec[j].Mountpoint })
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := store.SetMeta(MetaMounts, b); err != nil {
		return fmt.Errorf("scan: recording the mounts: %w", err)
	}
	return nil
}

// SaveMounts records the mounts the given watched paths are seen through
// now, as a scan that writes the store does: for the agent, after it has
// reported a mount or unmount live, so that the next start does not report
// it again.
func SaveMounts(store *state.Store, paths []string) error {
	cur, err := mounts.Read()
	if err != nil {
		return err
	}
	used := map[string]*mounts.Mount{}
	for _, p := range paths {
		if x := cur.Cover(filepath.Clean(p)); x != nil && strings.HasPrefix(p, "/") {
			used[x.Mountpoint] = x
		}
	}
	return saveMounts(store, used)
}

// EntryLines describe, one line each, what a finding says beyond content
// and attributes (vigil scan's text output): the entry's type when it is
// not a regular file, a symlink's target ("symlink -> /new (was -> /old)"),
// a device node's numbers ("char-device 1:3") and the mount change.
func EntryLines(f *Finding) []string {
	var out []string
	a := f.New
	if a == nil {
		a = f.Old
	}
	switch {
	case a == nil:
	case a.Type == TypeSymlink:
		l := "symlink -> " + a.Target
		if o := f.Old; f.New != nil && o != nil && o.Type == TypeSymlink && o.Target != a.Target {
			l += " (was -> " + o.Target + ")"
		}
		out = append(out, l)
	case a.Major != nil:
		l := fmt.Sprintf("%s %d:%d", a.Type, *a.Major, *a.Minor)
		if o := f.Old; f.New != nil && o != nil && o.Major != nil && (*o.Major != *a.Major || *o.Minor != *a.Minor) {
			l += fmt.Sprintf(" (was %d:%d)", *o.Major, *o.Minor)
		}
		out = append(out, l)
	case a.Type != TypeFile:
		out = append(out, a.Type)
	}
	if f.Mount != nil {
		out = append(out, f.Mount.Line())
	}
	return out
}
