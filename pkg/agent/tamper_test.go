//go:build privileged

package agent_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// mapIDs lists the kernel's map IDs.
func mapIDs(t *testing.T) map[ebpf.MapID]bool {
	t.Helper()
	ids := map[ebpf.MapID]bool{}
	var id ebpf.MapID
	for {
		next, err := ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids
		}
		if err != nil {
			t.Fatal(err)
		}
		ids[next] = true
		id = next
	}
}

// watchedMap finds, as an attacker with CAP_SYS_ADMIN would, the kernel
// map named "watched" that holds every one of keys, among the maps not in
// before (listed before the agent started): other agents may run at once,
// each with its own map, and a map of an agent that watched files since
// deleted can hold the same inode numbers.
func watchedMap(t *testing.T, before map[ebpf.MapID]bool, keys ...sensor.Key) *ebpf.Map {
	t.Helper()
	var found *ebpf.Map
	for id := range mapIDs(t) {
		if before[id] {
			continue
		}
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := m.Info()
		all := err == nil && info.Name == loader.MapWatched
		for _, k := range keys {
			all = all && m.Lookup(k, make([]byte, m.ValueSize())) == nil
		}
		if !all {
			m.Close()
			continue
		}
		if found != nil {
			t.Fatalf("two watch maps hold %v", keys)
		}
		found = m
	}
	if found == nil {
		t.Fatalf("no map named watched holds %v", keys)
	}
	return found
}

// mapKeys lists a watch map's keys.
func mapKeys(t *testing.T, m *ebpf.Map) map[sensor.Key]bool {
	t.Helper()
	out := map[sensor.Key]bool{}
	var k sensor.Key
	v := make([]byte, m.ValueSize())
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = true
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func keyOf(t *testing.T, p string) sensor.Key {
	t.Helper()
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func parseCfg(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(t.Name()+".toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestHeartbeatAndWatchEntryTamper: heartbeats come at the configured
// interval with their counters; a watch entry deleted from the kernel map
// by another process is reported as tamper-detected, put back, and the
// file is watched again.
func TestHeartbeatAndWatchEntryTamper(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	if err := os.WriteFile(f, []byte(passwd0), 0o644); err != nil {
		t.Fatal(err)
	}
	before := mapIDs(t)
	r, stop := runAgent(t, parseCfg(t, fmt.Sprintf(
		"[agent]\nstate_dir = %q\nheartbeat = \"300ms\"\ntamper_check = \"300ms\"\n[coalesce]\nwindow = \"50ms\"\n[[watch]]\npath = %q\n",
		filepath.Join(dir, "state"), f)))
	defer stop()
	isHB := func(x rec) bool { return x.s("event.action") == "heartbeat" }
	hb := r.wait(t, 0, "heartbeat", isHB)
	for _, k := range []string{"vigil.heartbeat.records.live", "vigil.heartbeat.lost.kernel", "vigil.heartbeat.kernel.hook_hits",
		"vigil.heartbeat.watch.entries", "vigil.heartbeat.watch.capacity", "vigil.heartbeat.tamper.checks", "process.uptime"} {
		if hb.get(k) == nil {
			t.Errorf("heartbeat lacks %s: %s", k, hb)
		}
	}
	if hb.s("vigil.heartbeat.self_test_ok") != "true" || hb.s("event.kind") != "state" {
		t.Errorf("heartbeat: %s", hb)
	}
	// A second heartbeat, later, with the tamper checks counted and clean.
	hb2 := r.wait(t, r.mark(), "second heartbeat", func(x rec) bool {
		return isHB(x) && x.s("vigil.heartbeat.tamper.checks") != "0"
	})
	if hb2.s("vigil.heartbeat.tamper.findings") != "0" {
		t.Fatalf("false tamper finding: %s", hb2)
	}
	if got := r.find(func(x rec) bool { return x.s("event.action") == "tamper-detected" }); got != nil {
		t.Fatalf("tamper-detected with no tampering: %s", got)
	}

	key := keyOf(t, f)
	m := watchedMap(t, before, key, keyOf(t, dir))
	defer m.Close()
	mark := r.mark()
	if err := m.Delete(key); err != nil {
		t.Fatalf("deleting the watch entry: %v", err)
	}
	if info, err := m.Info(); err == nil {
		id, _ := info.ID()
		t.Logf("deleted %s from map %d; still there: %v", key, id, m.Lookup(key, make([]byte, m.ValueSize())) == nil)
	}
	td := r.wait(t, mark, "tamper-detected", func(x rec) bool { return x.s("event.action") == "tamper-detected" })
	if td.s("event.kind") != "alert" || td.s("vigil.severity") != "critical" ||
		!strings.Contains(td.String(), "watch-entry-missing") || !strings.Contains(td.String(), f) {
		t.Fatalf("tamper record: %s", td)
	}
	if err := m.Lookup(key, make([]byte, m.ValueSize())); err != nil {
		t.Fatalf("entry not put back: %v", err)
	}
	// Watched again: a change is reported.
	mark = r.mark()
	sh(t, "echo 'eve:x:1001:1001::/home/eve:/bin/sh' >> "+f)
	r.wait(t, mark, "modified after repair", forPath(f, "modified"))
	r.wait(t, mark, "heartbeat counting the repair", func(x rec) bool {
		return isHB(x) && x.s("vigil.heartbeat.tamper.repaired") == "1"
	})
}

// TestCapabilitiesDropped runs an agent as the vigil command does (its own
// process, capabilities dropped after loading) and checks its capability
// sets in /proc, then that it still follows a rename-replacement (the
// re-seed updates the kernel map) and reports changes to the new file.
func TestCapabilitiesDropped(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	pw := filepath.Join(dir, "passwd")
	os.WriteFile(pw, []byte(passwd0), 0o644)
	cfgPath := filepath.Join(dir, "vigil.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[agent]\nstate_dir = %q\nheartbeat = \"500ms\"\ntamper_check = \"500ms\"\n"+
		"[coalesce]\nwindow = \"50ms\"\n[[watch]]\npath = %q\n", filepath.Join(dir, "state"), pw)), 0o644)
	exe, _ := os.Executable()
	child := exec.Command(exe)
	child.Env = append(os.Environ(), childConfigEnv+"="+cfgPath, childDropCapsEnv+"=1")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	lines := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	waitLine := func(what string, match func(string) bool) string {
		t.Helper()
		deadline := time.After(testutil.Timeout() * 3)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child agent exited waiting for %s; it wrote:\n%s", what, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if match(l) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %s; the child wrote:\n%s", what, strings.Join(seen, "\n"))
			}
		}
	}
	has := func(s ...string) func(string) bool {
		return func(l string) bool {
			for _, x := range s {
				if !strings.Contains(l, x) {
					return false
				}
			}
			return true
		}
	}
	st := waitLine("self-test", has(`"action":"self-test"`))
	if !strings.Contains(st, `"outcome":"success"`) {
		t.Fatalf("self-test after the drop: %s", st)
	}
	waitLine("agent-ready", has(`"agent-ready"`))

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", child.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	const kept = 1<<39 | 1<<2 // CAP_BPF (39), CAP_DAC_READ_SEARCH (2)
	want := map[string]uint64{"CapInh": 0, "CapPrm": kept, "CapEff": kept, "CapBnd": kept, "CapAmb": 0}
	for _, line := range strings.Split(string(status), "\n") {
		name, val, ok := strings.Cut(line, ":\t")
		w, isCap := want[name]
		if !ok || !isCap {
			continue
		}
		var got uint64
		fmt.Sscanf(val, "%x", &got)
		if got != w {
			t.Errorf("%s = %016x, want %016x", name, got, w)
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Fatalf("/proc status lacks %v:\n%s", want, status)
	}
	hb := waitLine("heartbeat", has(`"heartbeat"`, `"capabilities"`))
	if !strings.Contains(hb, `"capabilities":["CAP_DAC_READ_SEARCH","CAP_BPF"]`) {
		t.Errorf("heartbeat capabilities: %s", hb)
	}

	// Replace the file by rename: the agent must re-seed the new inode
	// (a map update, CAP_BPF) and see the next change to it.
	sh(t, fmt.Sprintf("cp %[1]s %[1]s.new && echo 'bob:x:1002:1002::/home/bob:/bin/sh' >> %[1]s.new && mv %[1]s.new %[1]s", pw))
	waitLine("replaced", has(`"action":"replaced"`, `"path":"`+pw+`"`))
	sh(t, "echo 'carol:x:1003:1003::/home/carol:/bin/sh' >> "+pw)
	waitLine("modified after the replace", has(`"action":"modified"`, `"path":"`+pw+`"`, `carol`))
	// A reload that adds a watch (new map entries) works without the
	// dropped capabilities, and the new file is watched.
	grp := filepath.Join(dir, "group")
	os.WriteFile(grp, []byte(group0), 0o644)
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[agent]\nstate_dir = %q\nheartbeat = \"500ms\"\ntamper_check = \"500ms\"\n"+
		"[coalesce]\nwindow = \"50ms\"\n[[watch]]\npath = %q\n[[watch]]\npath = %q\n", filepath.Join(dir, "state"), pw, grp)), 0o644)
	if err := child.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rl := waitLine("config-reloaded", has(`"action":"config-reloaded"`))
	if !strings.Contains(rl, `"outcome":"success"`) {
		t.Fatalf("reload after the drop: %s", rl)
	}
	sh(t, "echo 'ops:x:2000:' >> "+grp)
	waitLine("modified of the file the reload added", has(`"action":"modified"`, `"path":"`+grp+`"`))
	// The tamper checks run without CAP_SYS_ADMIN and find nothing.
	hb = waitLine("heartbeat after checks", func(l string) bool {
		return strings.Contains(l, `"heartbeat"`) && !strings.Contains(l, `"checks":0`)
	})
	if !strings.Contains(hb, `"findings":0`) || !strings.Contains(hb, `"errors":0`) {
		t.Errorf("tamper checks after the drop: %s", hb)
	}
}
