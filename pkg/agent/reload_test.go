//go:build privileged

package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// TestReloadUnderWriteStorm: a process appends to a watched file without
// pause while the configuration is reloaded again and again, adding and
// removing other watches. Every write is in the records (the coalesced
// records count them, per actor), no record is lost, and each reload's
// watches are in the kernel's map, or gone from it, right after it.
func TestReloadUnderWriteStorm(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	storm := filepath.Join(dir, "data", "storm.log")
	added := filepath.Join(dir, "data", "added.conf")
	tree := filepath.Join(dir, "tree")
	inTree := filepath.Join(tree, "sub", "x.conf")
	for _, p := range []string{storm, added, inTree} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("start\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "vigil.toml")
	base := fmt.Sprintf(`
[agent]
state_dir = %q
[coalesce]
window = "100ms"
[output]
stdout = false
[[watch]]
path = %q
kind = "hash"
`, filepath.Join(dir, "state"), storm)
	extra := fmt.Sprintf(`
[[watch]]
path = %q
kind = "diff"
[[watch]]
path = %q
recursive = true
`, added, tree)
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h := agent.NewHandle()
	r, stopAgent := startAgent(t, agent.Options{Config: cfg, Handle: h,
		LoadConfig: func() (*config.Config, error) { return config.Load(cfgPath) }})
	defer stopAgent()

	key := func(p string) sensor.Key {
		k, _, err := sensor.KeyOf(p, true)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// inKernel says whether the kernel's map has an entry for each key.
	inKernel := func(keys ...sensor.Key) []bool {
		t.Helper()
		ents, err := agent.KernelEntries(h)
		if err != nil {
			t.Fatal(err)
		}
		have := map[sensor.Key]bool{}
		for _, e := range ents {
			have[e.Key] = true
		}
		out := make([]bool, len(keys))
		for i, k := range keys {
			out[i] = have[k]
		}
		return out
	}
	stormKey, addedKey, treeKey := key(storm), key(added), key(tree)
	reload := func(withExtra bool) {
		t.Helper()
		text := base
		if withExtra {
			text += extra
		}
		write(text)
		ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
		defer done()
		res, err := h.Reload(ctx)
		if err != nil || !res.OK {
			t.Fatalf("reload: %v %+v", err, res)
		}
		got := inKernel(stormKey, addedKey, treeKey)
		if !got[0] || got[1] != withExtra || got[2] != withExtra {
			t.Fatalf("after a reload with the extra watches %v: kernel entries storm/added/tree = %v", withExtra, got)
		}
	}

	// The storm: one shell appends until told to stop, then says how many.
	stop := filepath.Join(dir, "stop")
	writer := exec.Command("sh", "-c", fmt.Sprintf(
		`i=0; while [ ! -e %s ]; do echo "line $i" >> %s; i=$((i+1)); done; echo $i`, stop, storm))
	var out strings.Builder
	writer.Stdout = &out
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	reloads := testutil.Scale(8, 2)
	for i := 0; i < reloads; i++ {
		time.Sleep(time.Duration(testutil.Scale(150, 1)) * time.Millisecond)
		reload(i%2 == 0)
	}
	os.WriteFile(stop, nil, 0o600)
	if err := writer.Wait(); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil || n == 0 {
		t.Fatalf("writer said %q", out.String())
	}
	pid := writer.Process.Pid
	t.Logf("%d appends by pid %d during %d reloads", n, pid, reloads)

	// Every append is counted in the live modified records, all of them by
	// the writer.
	deadline := time.Now().Add(testutil.Timeout())
	var total, byWriter int
	for {
		total, byWriter = 0, 0
		for _, x := range r.since(0, forPath(storm, "modified")) {
			w, _ := x.get("vigil.writes").(float64)
			total += int(w)
			actors, _ := x.get("vigil.actors").([]any)
			for _, a := range actors {
				if m, ok := a.(map[string]any); ok && fmt.Sprint(m["pid"]) == fmt.Sprint(pid) {
					c, _ := m["writes"].(float64)
					byWriter += int(c)
				}
			}
		}
		if total >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if total != n || byWriter != n {
		t.Errorf("records count %d writes (%d by the writer), want %d", total, byWriter, n)
	}
	if lost := r.since(0, lostFileRecords); len(lost) > 0 {
		t.Errorf("records were lost: %v", lost)
	}
	logGaps(t, r)
	if got := r.since(0, func(x rec) bool { return x.s("event.action") == "config-reloaded" }); len(got) != reloads {
		t.Errorf("%d config-reloaded records, want %d", len(got), reloads)
	}

	// The last reload removed the extra watches: a write there is not
	// reported (the storm file's record, written after it, is the marker).
	mark := r.mark()
	sh(t, fmt.Sprintf("echo unseen >> %s; echo unseen >> %s; echo marker >> %s", added, inTree, storm))
	r.wait(t, mark, "marker", forPath(storm, "modified"))
	if got := r.since(mark, func(x rec) bool {
		return x.s("file.path") == added || x.s("file.path") == inTree
	}); len(got) > 0 {
		t.Errorf("a removed watch still reports: %v", got)
	}
	// Put back, both are reported again, the tree's new files too.
	reload(true)
	mark = r.mark()
	sh(t, fmt.Sprintf("echo seen >> %s; echo seen >> %s; echo new > %s", added, inTree, filepath.Join(tree, "new.conf")))
	x := r.wait(t, mark, "added.conf modified", forPath(added, "modified"))
	if hasChange(x, "lines-changed", "") == nil || !strings.Contains(x.String(), "+seen") {
		t.Errorf("added.conf's record lacks its diff: %s", x)
	}
	r.wait(t, mark, "tree file modified", forPath(inTree, "modified"))
	r.wait(t, mark, "tree file created", forPath(filepath.Join(tree, "new.conf"), "created"))

	// A bad configuration: the reload fails with file:line: key, the running
	// configuration stays (its watches still in the kernel and reporting).
	write(base + extra + "[[watch]]\npath = \"relative\"\n[sensor]\nmax_depth = 99\n")
	res, err := h.Reload(context.Background())
	if err != nil || res.OK {
		t.Fatalf("a bad configuration reloaded: %v %+v", err, res)
	}
	fail := r.wait(t, mark, "failed reload", func(x rec) bool {
		return x.s("event.action") == "config-reloaded" && x.s("event.outcome") == "failure"
	})
	errs := fail.s("vigil.reload.errors")
	for _, want := range []string{cfgPath + ":", `watch.3.path: "relative" must be absolute`, "sensor.max_depth: 99"} {
		if !strings.Contains(errs, want) {
			t.Errorf("failed reload's errors lack %q: %s", want, fail)
		}
	}
	if fail.s("event.kind") != "alert" {
		t.Errorf("a failed reload must be an alert: %s", fail)
	}
	if got := inKernel(stormKey, addedKey, treeKey); !got[0] || !got[1] || !got[2] {
		t.Errorf("the running configuration's entries went after a failed reload: %v", got)
	}
	mark = r.mark()
	sh(t, "echo still >> "+added)
	r.wait(t, mark, "added.conf still watched", forPath(added, "modified"))

	// A key that needs a restart is named, and not applied.
	write(base + extra + "[sensor]\nmax_depth = 4\n")
	res, err = h.Reload(context.Background())
	if err != nil || !res.OK || strings.Join(res.RestartNeeded, ",") != "sensor.max_depth" {
		t.Errorf("restart-only key: %v %+v", err, res)
	}

	st, ok := h.Stats()
	if !ok {
		t.Fatal("no stats from a running agent")
	}
	if st.Reloads["success"] != uint64(reloads+2) || st.Reloads["failure"] != 1 || st.LastReload == nil || !st.LastReload.OK {
		t.Errorf("reload counts: %v, last %+v", st.Reloads, st.LastReload)
	}
	if st.Watch.Rules != 3 || st.Watch.MapEntries < 3 || st.Watch.MapCapacity == 0 || st.RingBuffer.Size == 0 {
		t.Errorf("watch stats: %+v, ring %+v", st.Watch, st.RingBuffer)
	}
	// The kernel's losses: none.
	if st.Latency.Count == 0 || st.Live == 0 || st.LostKernel != 0 || st.LostQueue != 0 {
		t.Errorf("counters: latency %d observations, live %d, lost %d/%d", st.Latency.Count, st.Live, st.LostKernel, st.LostQueue)
	}
	var reloadRecs uint64
	for _, c := range st.Records {
		if c.Action == "config-reloaded" {
			reloadRecs += c.N
		}
	}
	if reloadRecs != uint64(reloads+3) {
		t.Errorf("stats count %d config-reloaded records, want %d: %+v", reloadRecs, reloads+3, st.Records)
	}
}
