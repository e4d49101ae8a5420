package sensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/hashicorp/go-multierror"
)

// TamperCheck names what a tamper check found.
type TamperCheck string

// The tamper checks' findings.
const (
	CheckProgramMissing    TamperCheck = "program-missing"
	CheckLinkMissing       TamperCheck = "link-missing"
	CheckLinkReplaced      TamperCheck = "link-replaced"
	CheckLinkUnreadable    TamperCheck = "link-unreadable"
	CheckHookSilent        TamperCheck = "hook-silent"
	CheckKprobesDisabled   TamperCheck = "kprobes-disabled"
	CheckWatchEntryMissing TamperCheck = "watch-entry-missing"
)

// Tamper is one sign that vigil's kernel side was changed behind its back.
type Tamper struct {
	// Check names what failed.
	Check TamperCheck `json:"check"`
	// Hook is the attach point concerned ("kprobe/vfs_write"), if one.
	Hook   string         `json:"hook,omitempty"`
	ProgID ebpf.ProgramID `json:"prog_id,omitempty"`
	LinkID link.ID        `json:"link_id,omitempty"`
	Detail string         `json:"detail"`
}

// CheckAttached compares the programs and links recorded at load with what
// the kernel has now: every program and link ID must still be listed by the
// kernel, and every link must still run the program it was made with (a
// link update would swap it). Listing IDs needs CAP_SYS_ADMIN, which vigil
// drops after loading: without it only the links' own fds are asked (a link
// cannot leave the kernel's list while vigil holds its fd; the canary sees
// a hook that stopped running).
func (s *Sensor) CheckAttached() ([]Tamper, error) {
	progs, err := programIDs()
	if errors.Is(err, os.ErrPermission) {
		progs = nil
	} else if err != nil {
		return nil, err
	}
	links, err := linkIDs()
	if errors.Is(err, os.ErrPermission) {
		links = nil
	} else if err != nil {
		return nil, err
	}
	var out []Tamper
	for _, a := range s.loaded.Attached {
		if progs != nil && a.ProgID != 0 && !progs[a.ProgID] {
			out = append(out, Tamper{Check: CheckProgramMissing, Hook: a.Hook, ProgID: a.ProgID,
				Detail: fmt.Sprintf("program %s (id %d) is no longer listed by the kernel", a.Program, a.ProgID)})
		}
		if a.LinkID == 0 {
			continue
		}
		if links != nil && !links[a.LinkID] {
			out = append(out, Tamper{Check: CheckLinkMissing, Hook: a.Hook, ProgID: a.ProgID, LinkID: a.LinkID,
				Detail: fmt.Sprintf("link %d is no longer listed by the kernel", a.LinkID)})
			continue
		}
		info, err := a.Link().Info()
		if err != nil {
			out = append(out, Tamper{Check: CheckLinkUnreadable, Hook: a.Hook, ProgID: a.ProgID, LinkID: a.LinkID,
				Detail: err.Error()})
			continue
		}
		if info.Program != a.ProgID {
			out = append(out, Tamper{Check: CheckLinkReplaced, Hook: a.Hook, ProgID: a.ProgID, LinkID: a.LinkID,
				Detail: fmt.Sprintf("link %d runs program %d, not vigil's %d", a.LinkID, info.Program, a.ProgID)})
		}
	}
	return out, nil
}

func programIDs() (map[ebpf.ProgramID]bool, error) {
	ids := map[ebpf.ProgramID]bool{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing BPF programs: %w", err)
		}
		ids[next] = true
		id = next
	}
}

// linkIDs lists the kernel's bpf_link IDs. The iterator opens each link to
// move on; the fds are closed at once.
func linkIDs() (map[link.ID]bool, error) {
	ids := map[link.ID]bool{}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		ids[it.ID] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("listing BPF links: %w", err)
	}
	return ids, nil
}

// canaryHooks are the hooks the canary's operations must make run: every
// attach point whose target is named here is checked.
var canaryHooks = map[string]string{
	"vfs_write": "vfs_write", "security_file_open": "file_open", "notify_change": "notify_change",
	"vfs_rename": "vfs_rename", "vfs_unlink": "vfs_unlink", "vfs_link": "vfs_link",
	"sys_exit": "sys_exit", "raw_syscalls/sys_exit": "sys_exit",
}

// Canary checks that the hooks still run: it opens, writes, chmods, links,
// renames and unlinks a file in dir (as vigil, whose own operations are
// never reported) and checks that the kernel's hit counter of every hook
// those operations reach went up. A detached link, a perf event disabled
// behind vigil's back, or kprobes switched off system-wide
// (/sys/kernel/debug/kprobes/enabled) all leave a counter still.
func (s *Sensor) Canary(dir string) ([]Tamper, error) {
	before, err := s.Counters()
	if err != nil {
		return nil, err
	}
	if err := canaryOps(dir); err != nil {
		return nil, fmt.Errorf("canary operations in %s: %w", dir, err)
	}
	// Counters are per-CPU and written in the hook itself: they are current
	// once the syscalls have returned.
	after, err := s.Counters()
	if err != nil {
		return nil, err
	}
	var out []Tamper
	seen := map[string]bool{}
	for _, a := range s.loaded.Attached {
		kind, target, _ := strings.Cut(a.Hook, "/")
		name, ok := canaryHooks[target]
		if !ok || kind == "kretprobe" || kind == "fexit" || seen[name] {
			continue
		}
		seen[name] = true
		if after.Hits[name] <= before.Hits[name] {
			out = append(out, Tamper{Check: CheckHookSilent, Hook: a.Hook, ProgID: a.ProgID, LinkID: a.LinkID,
				Detail: fmt.Sprintf("hook %s did not run for the canary's operations", a.Hook)})
		}
	}
	if len(out) > 0 && s.info.HookTyp == "kprobe" {
		if b, err := os.ReadFile(kprobesEnabled); err == nil && strings.TrimSpace(string(b)) == "0" {
			out = append(out, Tamper{Check: CheckKprobesDisabled,
				Detail: kprobesEnabled + " is 0: every kprobe on the system is disarmed"})
		}
	}
	return out, nil
}

// kprobesEnabled is the system-wide kprobe switch (debugfs).
var kprobesEnabled = "/sys/kernel/debug/kprobes/enabled"

func canaryOps(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	p := filepath.Join(dir, "canary")
	os.Remove(p)
	os.Remove(p + ".link")
	os.Remove(p + ".new")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + "\n")
	cerr := f.Close()
	if err := multierror.Append(werr, cerr).ErrorOrNil(); err != nil {
		return err
	}
	if err := os.Chmod(p, 0o400); err != nil {
		return err
	}
	if err := os.Link(p, p+".link"); err != nil {
		return err
	}
	if err := os.Rename(p+".link", p+".new"); err != nil {
		return err
	}
	if err := os.Remove(p + ".new"); err != nil {
		return err
	}
	return os.Remove(p)
}
