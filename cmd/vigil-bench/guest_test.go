//go:build benchguest

package main

// The emulated half of `make bench`: scripts/bench.sh builds this test
// binary static and boots it in the matrix kernels with scripts/vmtest.sh,
// where vigil is made to load its kprobe object (-hooks kprobe). Software emulation (TCG) distorts
// absolute speeds, so only ratios to the no-agent runs are reported, and
// they are labelled as emulated. It asserts nothing about speed: it fails
// only when a workload or an agent fails.

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-fim/vigil/pkg/kernel"
)

var (
	guestVigil = flag.String("bench.vigil", "/vigil/vigil", "the vigil binary in the guest")
	guestPairs = flag.Int("bench.pairs", 5, "alternating pairs per tool")
	guestOps   = flag.Int("bench.ops", 10000, "operations per 4 KiB and 1-byte loop (open/close: half)")
	guestTP    = flag.Bool("bench.tracepoint", false, "also measure vigil forced to the tracepoint object")
	guestFE    = flag.Bool("bench.fentry", false, "also measure vigil forced to the fentry object")
	guestLSM   = flag.Bool("bench.lsm", false, "also measure vigil forced to the BPF-LSM object, where the kernel runs the BPF LSM")
)

func TestGuestOverhead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: run by make bench inside the matrix guests")
	}
	root := t.TempDir()
	file, watched, err := overheadDirs(filepath.Join(root, "overhead"), filepath.Join(root, "unwatched"))
	if err != nil {
		t.Fatal(err)
	}
	ws := []watchSpec{{Path: watched[0]}, {Path: watched[1], Recursive: true}}
	// The kprobe object, forced: this section's figures and targets are the
	// kprobe family's, whatever family the loader prefers.
	tools := []tool{&vigilAgent{label: "vigil", bin: *guestVigil, dir: filepath.Join(root, "agent-kprobe"), watches: ws,
		extra: []string{"-hooks", "kprobe"}}}
	if *guestFE {
		tools = append(tools, &vigilAgent{label: "vigil-fentry", bin: *guestVigil, dir: filepath.Join(root, "agent-fentry"),
			watches: ws, extra: []string{"-hooks", "fentry"}})
	}
	if *guestLSM {
		// Only where the kernel runs the BPF LSM: elsewhere the loader
		// refuses the family (its programs would never run).
		if f, err := kernel.Probe(); err != nil {
			t.Fatal(err)
		} else if kernel.HasLSM(f.LSMs, "bpf") {
			tools = append(tools, &vigilAgent{label: "vigil-lsm", bin: *guestVigil, dir: filepath.Join(root, "agent-lsm"),
				watches: ws, extra: []string{"-hooks", "lsm"}})
		} else {
			t.Logf("kernel %s: no BPF-LSM agent: the BPF LSM is not active (%q%s)", f.Release, f.LSMs, f.LSMErr)
		}
	}
	if *guestTP {
		tools = append(tools, &vigilAgent{label: "vigil-tracepoint", bin: *guestVigil, dir: filepath.Join(root, "agent-tp"),
			watches: ws, extra: []string{"-hooks", "tracepoint"}})
	}
	n := *guestOps
	s := Settings{Pairs: *guestPairs, N4k: n, N1: n, NOpen: n / 2}
	logf := func(f string, a ...any) { t.Logf(f, a...) }
	oh, err := measureOverhead(file, tools, writeLoops(s.N4k, s.N1, s.NOpen), s.Pairs, logf)
	if err != nil {
		t.Fatal(err)
	}
	res := Results{Machine: machine(*guestVigil), Settings: s, Overhead: oh}
	res.Machine.Emulated = true
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	// One line on the results console, picked up by scripts/bench.sh.
	fmt.Printf("VIGIL-BENCH-RESULT %s\n", b)
}
