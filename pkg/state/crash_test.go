package state

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a child that writes to the
// store in a loop and prints each committed operation; the parent kills it
// with SIGKILL at a random moment, reopens the store and checks it.
const (
	crashEnvPath  = "VIGIL_STATE_CRASH_STORE"
	crashEnvStart = "VIGIL_STATE_CRASH_START"
	crashSlots    = 50
)

// Operation v writes every slot (a PutMany) when v%10 == 0, else slot
// v%crashSlots alone (a Put). Every field of a record derives from v.
func crashWrites(v, slot int) bool { return v%10 == 0 || v%crashSlots == slot }

func crashEntry(slot, v int) Entry {
	sum := sha256.Sum256([]byte(strconv.Itoa(v)))
	pad := v % 900
	if v%7 == 0 {
		pad += 5000 // an overflow page now and then
	}
	st, _ := json.Marshal(map[string]any{"v": v, "slot": slot, "pad": strings.Repeat("p", pad)})
	return Entry{Path: fmt.Sprintf("/crash/%03d", slot), Kind: "hash", Ino: uint64(v), Size: int64(v),
		SHA256: hex.EncodeToString(sum[:]), State: st, UpdatedNS: int64(v)}
}

// crashCheck returns the version of a record after checking that all of it
// is that one version.
func crashCheck(e Entry, slot int) (int, error) {
	v := int(e.Size)
	want := crashEntry(slot, v)
	if e.Path != want.Path || e.Ino != want.Ino || e.SHA256 != want.SHA256 || e.UpdatedNS != want.UpdatedNS || string(e.State) != string(want.State) {
		return 0, fmt.Errorf("record %s is not a whole version %d: %+v", e.Path, v, e)
	}
	return v, nil
}

func crashChild(path string, start int) {
	s, err := Open(path, Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for v := start; ; v++ {
		if v%10 == 0 {
			es := make([]Entry, crashSlots)
			for k := range es {
				es[k] = crashEntry(k, v)
			}
			err = s.PutMany(es)
		} else {
			err = s.Put(crashEntry(v%crashSlots, v))
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("committed", v)
	}
}

func TestCrashSafety(t *testing.T) {
	if p := os.Getenv(crashEnvPath); p != "" {
		start, _ := strconv.Atoi(os.Getenv(crashEnvStart))
		crashChild(p, start)
		return
	}
	path := t.TempDir() + "/" + StoreFile
	type span struct{ from, to int } // operations known committed
	var done []span
	start := 1
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSafety$")
		cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvStart+"="+strconv.Itoa(start))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		last := start - 1
		want := 100 + rng.Intn(200)
		killed := false
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "error") {
				t.Fatalf("child: %s", line)
			}
			n, ok := strings.CutPrefix(line, "committed ")
			if !ok {
				continue
			}
			last, _ = strconv.Atoi(n)
			if !killed && last-start >= want {
				// Somewhere in the next operation, most likely in a commit.
				time.Sleep(time.Duration(rng.Intn(3000)) * time.Microsecond)
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited before it was killed (last op %d)", round, last)
		}
		done = append(done, span{start, last})

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopening after SIGKILL: %v", round, err)
		}
		n, err := s.Len()
		if err != nil || n != crashSlots {
			t.Fatalf("round %d: %d records (%v), want %d", round, n, err, crashSlots)
		}
		for k := 0; k < crashSlots; k++ {
			e, ok, err := s.Get(fmt.Sprintf("/crash/%03d", k))
			if err != nil || !ok {
				t.Fatalf("round %d: slot %d: %v %v", round, k, ok, err)
			}
			v, err := crashCheck(e, k)
			if err != nil {
				t.Fatalf("round %d: torn record: %v", round, err)
			}
			// The newest committed write to the slot must be there; the
			// operation in flight at the kill may or may not be.
			floor := 0
			for _, sp := range done {
				for w := sp.from; w <= sp.to; w++ {
					if crashWrites(w, k) {
						floor = w
					}
				}
			}
			if v < floor || v > last+1 || !crashWrites(v, k) {
				t.Fatalf("round %d: slot %d holds version %d; the last committed write was %d, the last operation %d", round, k, v, floor, last+1)
			}
		}
		// A PutMany in flight at the kill is all there or not at all.
		if inflight := last + 1; inflight%10 == 0 {
			n := 0
			for k := 0; k < crashSlots; k++ {
				if e, _, _ := s.Get(fmt.Sprintf("/crash/%03d", k)); e.Size == int64(inflight) {
					n++
				}
			}
			if n != 0 && n != crashSlots {
				t.Fatalf("round %d: batch %d is in %d of %d records", round, inflight, n, crashSlots)
			}
		}
		s.Close()
		t.Logf("round %d: killed after operation %d, store consistent", round, last)
		start = last + 2 // last+1 may or may not have committed
	}
}
