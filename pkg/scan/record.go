package scan

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/mounts"
	"github.com/vigil-fim/vigil/pkg/state"
)

// RecordEntries gives a baseline, quietly, to what rules name and prev
// (the rules before a reload) did not, that the agent's live watch set does
// not observe and the store has no record of: the directories, symlinks,
// FIFOs, sockets and device nodes of trees that joined the watch set by a
// reload (their regular files are observed by the watch set), and the
// mounts those entries are seen through where no recorded mount covers
// them. Without it the next start would report each such entry created.
// Entries prev covered are left alone: one made while vigil ran is the next
// start's to report. It returns the paths recorded, in path order.
func RecordEntries(rules, prev []config.Watch, maxDepth int, store *state.Store, key []byte) ([]string, error) {
	targets, _ := Expand(rules, maxDepth) // the watch set reports expansion problems
	old := expand.NewScope(prev, maxDepth)
	var cands []Target
	for _, t := range targets {
		if t.Type != 0 && !old.Covers(t.Path) {
			cands = append(cands, t)
		}
	}
	paths := make([]string, len(cands))
	for i := range cands {
		paths[i] = cands[i].Path
	}
	olds, err := store.GetMany(paths)
	if err != nil {
		return nil, err
	}
	r := newReader(key)
	now := time.Now().UnixNano()
	var writes []state.Entry
	var done []string
	for i := range cands {
		t := &cands[i]
		if _, ok := olds[t.Path]; ok {
			continue
		}
		var o observation
		if err := r.read(t.Path, &o); err != nil || o.absent || o.regular {
			continue // gone, or a regular file: the watch set's
		}
		e := state.Entry{Path: t.Path, Kind: t.Kind, UpdatedNS: now, Dev: o.st.Dev, Ino: o.st.Ino, Size: o.st.Size,
			Mode: o.st.Mode, UID: o.st.Uid, GID: o.st.Gid, MtimeNS: o.st.Mtim.Nano(), CtimeNS: o.st.Ctim.Nano(),
			Attrs: o.attrs, Target: o.target}
		if isDevice(o.st.Mode) {
			e.Rdev = o.st.Rdev
		}
		writes = append(writes, e)
		done = append(done, t.Path)
	}
	if err := store.PutMany(writes); err != nil {
		return nil, err
	}
	return done, addMounts(store, targets)
}

// addMounts adds to the recorded mounts the ones that cover targets no
// recorded mountpoint does (a reload's new trees on another filesystem);
// recorded mountpoints are left as they are, so a change of one is still
// reported by the next start.
func addMounts(store *state.Store, targets []Target) error {
	b, err := store.Meta(MetaMounts)
	if err != nil || b == nil {
		return err // none recorded: the next start records them
	}
	var rec []*mounts.Mount
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("scan: the recorded mounts: %w", err)
	}
	cur, err := mounts.Read()
	if err != nil {
		return err
	}
	m := &mountScan{old: map[string]*mounts.Mount{}}
	used := map[string]*mounts.Mount{}
	for _, x := range rec {
		m.old[x.Mountpoint] = x
		used[x.Mountpoint] = x
	}
	added := false
	for _, t := range targets {
		c := cur.Cover(filepath.Clean(t.Path))
		if c == nil {
			continue
		}
		if od := m.oldCover(t.Path); od == nil || len(od.Mountpoint) < len(c.Mountpoint) {
			if _, ok := used[c.Mountpoint]; !ok {
				used[c.Mountpoint], added = c, true
			}
		}
	}
	if !added {
		return nil
	}
	return saveMounts(store, used)
}
