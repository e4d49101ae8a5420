//go:build privileged

package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// stormEnv makes the test binary a storm actor (before TestMain runs):
// "replace:N:PATH" replaces PATH N times by rename, "append:PATH" appends a
// line to PATH every millisecond until PATH.stop exists. A process of its
// own: the agent under test never reports its own process's operations,
// and a shell loop forking mv is too slow on an emulated kernel.
const stormEnv = "VIGIL_STORM_ACTOR"

func init() {
	if v := os.Getenv(stormEnv); v != "" {
		if err := stormActor(v); err != nil {
			fmt.Fprintln(os.Stderr, "storm actor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func stormActor(v string) error {
	mode, rest, _ := strings.Cut(v, ":")
	switch mode {
	case "replace":
		ns, path, _ := strings.Cut(rest, ":")
		n, err := strconv.Atoi(ns)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			body := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nu%d:x:%d:100::/:/bin/sh\n", i, 2000+i)
			if err := os.WriteFile(path+".new", []byte(body), 0o644); err != nil {
				return err
			}
			if err := os.Rename(path+".new", path); err != nil {
				return err
			}
		}
		return nil
	case "append":
		for i := 0; ; i++ {
			if _, err := os.Stat(rest + ".stop"); err == nil {
				return nil
			}
			f, err := os.OpenFile(rest, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "w%d-%d:x:%d:100::/:/bin/sh\n", os.Getpid(), i, 3000+i%1000)
			f.Close()
			time.Sleep(time.Millisecond)
		}
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// stormCmd runs the test binary as a storm actor.
func stormCmd(t *testing.T, v string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(exe)
	c.Env = append(os.Environ(), stormEnv+"="+v)
	return c
}

// TestRenameStorm: 10,000 atomic replaces of a watched file (scaled down in
// the emulated guests) while two other processes keep appending to it.
// Every replace is reported as one record, nothing is lost, and at the end
// the kernel's watch map holds the file's current inode and nothing else
// new: the same entries as at the start with the file's old inode swapped
// for its current one (no stale entry per replaced inode).
func TestRenameStorm(t *testing.T) {
	needAgent(t)
	n := testutil.Scale(10000, 20)
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	if err := os.WriteFile(f, []byte(passwd0), 0o644); err != nil {
		t.Fatal(err)
	}
	before := mapIDs(t)
	r, stop := runAgent(t, parseCfg(t, fmt.Sprintf(
		"[agent]\nstate_dir = %q\nheartbeat = \"0s\"\n[coalesce]\nwindow = \"100ms\"\n[[watch]]\npath = %q\n",
		filepath.Join(dir, "state"), f)))
	defer stop()
	oldKey := keyOf(t, f)
	m := watchedMap(t, before, oldKey, keyOf(t, dir))
	defer m.Close()
	start := mapKeys(t, m)

	var writers []*exec.Cmd
	for w := 0; w < 2; w++ {
		c := stormCmd(t, "append:"+f)
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, c)
	}
	began := time.Now()
	out, err := stormCmd(t, fmt.Sprintf("replace:%d:%s", n, f)).CombinedOutput()
	os.WriteFile(f+".stop", nil, 0o600)
	for _, c := range writers {
		if err := c.Wait(); err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("storm: %v: %s", err, out)
	}
	t.Logf("%d replaces in %s", n, time.Since(began).Round(time.Millisecond))

	// Every replace is one record; wait for the last one. The agent stores
	// each file's state (an fsync'd transaction) per record, so it may
	// report well after the storm ends: wait while the count still grows.
	// A replace's record carries vigil.inode (a rename's old and new
	// inodes) and says "replaced": the file existed before.
	isRename := func(x rec) bool { return x.s("file.path") == f && x.get("vigil.inode.new") != nil }
	isReplace := func(x rec) bool { return isRename(x) && x.s("event.action") == "replaced" }
	var got int
	last, lastAt := -1, time.Now()
	for {
		got = len(r.since(0, isRename))
		if got >= n {
			break
		}
		if got != last {
			last, lastAt = got, time.Now()
		} else if time.Since(lastAt) > testutil.Timeout()*2 {
			actions := map[string]int{}
			for _, x := range r.since(0, func(x rec) bool { return true }) {
				actions[x.s("event.action")+" "+x.s("vigil.origin")]++
				if x.s("event.action") == "events-lost" {
					t.Logf("%s", x)
				}
			}
			t.Fatalf("%d replace records for %d replaces, none for %s; records by action: %v",
				got, n, testutil.Timeout()*2, actions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d rename records %s after the storm began", got, time.Since(began).Round(time.Millisecond))
	// A moment more: a count above n would be a double report.
	time.Sleep(500 * time.Millisecond)
	got = len(r.since(0, isRename))
	replaced := len(r.since(0, isReplace))
	// Every replace live, on every object and kernel: a run the kernel
	// skipped (docs/kernels.md, "Skipped runs") is a failure here too.
	if lost := r.find(lostFileRecords); lost != nil {
		t.Errorf("records lost during the storm: %s", lost)
	}
	logGaps(t, r)
	if got != n || replaced != n {
		t.Fatalf("%d rename records for %d replaces, %d of them \"replaced\" (the rest say the file was created)", got, n, replaced)
	}

	// The map: the start's entries, the old inode swapped for the current.
	cur := keyOf(t, f)
	end := mapKeys(t, m)
	want := map[sensor.Key]bool{}
	for k := range start {
		want[k] = true
	}
	delete(want, oldKey)
	want[cur] = true
	var extra, missing []string
	for k := range end {
		if !want[k] {
			extra = append(extra, k.String())
		}
	}
	for k := range want {
		if !end[k] {
			missing = append(missing, k.String())
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		t.Fatalf("watch map after the storm: %d entries (start %d); stale %v; missing %v (current inode %s)",
			len(end), len(start), extra, missing, cur)
	}
	if len(end) != len(start) {
		t.Fatalf("map size %d, was %d at the start", len(end), len(start))
	}
	// And the file is still followed: a write to the current inode is seen.
	mark := r.mark()
	sh(t, "echo 'zed:x:4000:100::/:/bin/sh' >> "+f)
	r.wait(t, mark, "modified after the storm", func(x rec) bool {
		return x.s("file.path") == f && x.s("event.action") == "modified" && strings.Contains(x.String(), "zed")
	})
}
