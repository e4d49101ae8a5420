package pkgmgr

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// Proc is one process as /proc/<pid>/stat gives it.
type Proc struct {
	PID, PPID uint32
	Comm      string
	// Start is the process's start time (clock ticks after boot): with
	// the pid, it names the process (a pid is reused, never with the same
	// start).
	Start uint64
}

// ReadProc reads /proc/<pid>/stat below proc ("/proc"). ok is false when
// the process is gone.
func ReadProc(proc string, pid uint32) (p Proc, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.FormatUint(uint64(pid), 10), "stat"))
	if err != nil {
		if os.IsNotExist(err) || isESRCH(err) {
			return Proc{}, false, nil
		}
		return Proc{}, false, err
	}
	p, err = ParseStat(b)
	return p, err == nil, err
}

func isESRCH(err error) bool { return errors.Is(err, syscall.ESRCH) }

// ParseStat parses a /proc/<pid>/stat line. The comm is between the first
// "(" and the last ")": it may hold spaces and parentheses.
func ParseStat(b []byte) (Proc, error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || close < open {
		return Proc{}, fmt.Errorf("stat: no (comm)")
	}
	pid, err := strconv.ParseUint(string(bytes.TrimSpace(b[:open])), 10, 32)
	if err != nil {
		return Proc{}, fmt.Errorf("stat: pid: %w", err)
	}
	// After the comm: state (3), ppid (4), ... starttime (22).
	f := bytes.Fields(b[close+1:])
	if len(f) < 20 {
		return Proc{}, fmt.Errorf("stat: %d fields after the comm, want at least 20", len(f))
	}
	ppid, err := strconv.ParseUint(string(f[1]), 10, 32)
	if err != nil {
		return Proc{}, fmt.Errorf("stat: ppid: %w", err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return Proc{}, fmt.Errorf("stat: starttime: %w", err)
	}
	return Proc{PID: uint32(pid), PPID: uint32(ppid), Comm: string(b[open+1 : close]), Start: start}, nil
}

// Procs reads every process below proc ("/proc"); processes that end
// while read are left out.
func Procs(proc string) ([]Proc, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || pid == 0 {
			continue
		}
		p, ok, err := ReadProc(proc, uint32(pid))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// Mark is a running process's package-manager lineage, as the kernel would
// have made it had it seen the manager's exec: the manager at the root of
// its tree, and whether the process is below it (a script).
type Mark struct {
	Proc   Proc
	Root   uint32
	Mgr    uint8
	Script bool
}

// ByComm returns the manager whose comm is comm, or false.
func ByComm(comm string) (Manager, bool) {
	for _, m := range Managers {
		if m.Comm == comm {
			return m, true
		}
	}
	return Manager{}, false
}

// Marks finds the running package managers among procs and marks them and
// their descendants, parents before children. A manager below another
// keeps the outer one as its root (as the kernel does).
func Marks(procs []Proc) []Mark {
	byPID := make(map[uint32]Proc, len(procs))
	children := map[uint32][]uint32{}
	for _, p := range procs {
		byPID[p.PID] = p
		if p.PPID != p.PID {
			children[p.PPID] = append(children[p.PPID], p.PID)
		}
	}
	for _, c := range children {
		sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	}
	// A root: a manager with no manager above it.
	isRoot := func(p Proc) bool {
		if _, ok := ByComm(p.Comm); !ok {
			return false
		}
		seen := map[uint32]bool{p.PID: true}
		for q, ok := byPID[p.PPID]; ok && !seen[q.PID]; q, ok = byPID[q.PPID] {
			seen[q.PID] = true
			if _, mgr := ByComm(q.Comm); mgr {
				return false
			}
		}
		return true
	}
	var roots []Proc
	for _, p := range procs {
		if isRoot(p) {
			roots = append(roots, p)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].PID < roots[j].PID })
	var out []Mark
	done := map[uint32]bool{}
	for _, r := range roots {
		m, _ := ByComm(r.Comm)
		queue := []Mark{{Proc: r, Root: r.PID, Mgr: m.ID}}
		for len(queue) > 0 {
			k := queue[0]
			queue = queue[1:]
			if done[k.Proc.PID] {
				continue
			}
			done[k.Proc.PID] = true
			out = append(out, k)
			for _, c := range children[k.Proc.PID] {
				queue = append(queue, Mark{Proc: byPID[c], Root: r.PID, Mgr: m.ID, Script: true})
			}
		}
	}
	return out
}
