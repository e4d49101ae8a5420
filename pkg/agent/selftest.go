package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// selfTestID is the watch id of the self-test's private directory.
const selfTestID = 1 << 62

// selfTestScript is what the self-test's shell runs on the probe file ("$1").
var selfTestScript = `echo vigil > "$1" && echo replaced > "$1.new" && mv "$1.new" "$1" && rm "$1"`

// selfTestTimeout bounds the wait for the self-test's records (generous:
// emulated kernels are slow).
var selfTestTimeout = 20 * time.Second

// prober watches the self-test's private directory (watch.Set.Probe).
type prober interface {
	Probe(dir string, id uint64) (release func() error, err error)
}

// selfTester creates, writes, replaces by rename and deletes a file in a
// private watched directory and checks that the kernel reported each
// operation. The ring buffer reader hands it the records of its directory
// (deliver); the result is one record (report) and ok.
type selfTester struct {
	dir    string
	watch  prober
	report func(want []sensor.Op, seen map[sensor.Op]bool, err error)
	log    zerolog.Logger
	events chan *sensor.Event
	// ok is the result, set once by run before the agent is ready.
	ok bool
}

func newSelfTester(stateDir string, w prober, report func([]sensor.Op, map[sensor.Op]bool, error), log zerolog.Logger) *selfTester {
	return &selfTester{dir: filepath.Join(stateDir, "selftest"), watch: w, report: report, log: log,
		events: make(chan *sensor.Event, 64)}
}

// deliver takes one of the self-test directory's records; it never blocks
// the ring buffer reader.
func (t *selfTester) deliver(e *sensor.Event) {
	select {
	case t.events <- e:
	default:
	}
}

// run does the operations and waits for their records.
func (t *selfTester) run() bool {
	t.ok = t.check()
	return t.ok
}

func (t *selfTester) check() bool {
	os.RemoveAll(t.dir)
	want := []sensor.Op{sensor.OpCreate, sensor.OpWrite, sensor.OpRename, sensor.OpUnlink}
	seen := map[sensor.Op]bool{}
	fail := func(err error) bool {
		t.report(want, seen, err)
		return false
	}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(t.dir)
	release, err := t.watch.Probe(t.dir, selfTestID)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := release(); err != nil {
			t.log.Warn().Err(err).Msg("clearing the self-test's watch entries")
		}
	}()
	// vigil's own operations are never reported (sensor SelfPID): a shell
	// does them, with the tools an administrator would use. The probe's
	// path is the script's $1, never part of its text: a state_dir with a
	// space or a quote in it stays one word.
	f := filepath.Join(t.dir, "probe")
	if out, err := exec.Command("/bin/sh", "-c", selfTestScript, "vigil-selftest", f).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("%v: %s", err, out))
	}
	deadline := time.After(selfTestTimeout)
	for {
		done := true
		for _, op := range want {
			done = done && seen[op]
		}
		if done {
			t.report(want, seen, nil)
			return true
		}
		select {
		case e := <-t.events:
			if e.Ret == 0 {
				seen[e.Op] = true
			}
		case <-deadline:
			return fail(fmt.Errorf("no record within %s", selfTestTimeout))
		}
	}
}
