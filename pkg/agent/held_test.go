package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// heldOut is what the held-record tests read of each record written.
type heldOut struct{ path, action, verified, problem string }

func heldRecords(t *testing.T, buf *bytes.Buffer, last *float64) []heldOut {
	t.Helper()
	var out []heldOut
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var r struct {
			Event struct {
				Action   string
				Sequence float64
			}
			File  struct{ Path string }
			Vigil struct {
				Package struct{ Verified, Problem string }
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Event.Sequence != *last+1 {
			t.Errorf("event.sequence %v after %v: want the records numbered as written", r.Event.Sequence, *last)
		}
		*last = r.Event.Sequence
		out = append(out, heldOut{r.File.Path, r.Event.Action, r.Vigil.Package.Verified, r.Vigil.Package.Problem})
	}
	buf.Reset()
	return out
}

// TestHeldRecords: a record waiting for its package verdict holds back
// only the later records of its own file; a verdict writes it and what
// waited behind it, in order; a full list writes its oldest at once,
// verified "unverified", and a verdict that comes for it afterwards
// writes nothing more; at the end every record is written.
func TestHeldRecords(t *testing.T) {
	var buf bytes.Buffer
	a := &Agent{rec: newRecorder(&buf, "h", "", nil), held: newHeld(time.Minute, 2)}
	// The verifier's stand-in: the test gives each verdict itself (below);
	// at the end it answers what is still due, as the verifier does when
	// its jobs are closed.
	marked := sensor.Process{PID: 7, Comm: "dpkg", AUID: ^uint32(0), SessionID: ^uint32(0),
		Package: sensor.Package{Manager: "dpkg", MgrID: 1, RootPID: 7}}
	plain := sensor.Process{PID: 8, Comm: "vi", AUID: ^uint32(0), SessionID: ^uint32(0)}
	put := func(path string, action watch.Action, p sensor.Process) *verifyJob {
		e := &sensor.Event{Op: sensor.OpWrite, Proc: p}
		ch := watch.Change{File: &watch.File{Path: path, Kind: "hash"}, Action: action}
		b := &burst{change: ch, events: []*sensor.Event{e}, last: e, count: 1}
		b.addActor(e)
		sn := &seen{sum: "x"}
		var job *verifyJob
		if p.Package.Marked() {
			job = &verifyJob{mgr: 1, c: content{path: path, sha256: "x"}}
		}
		a.record(ch, b, sn, job)
		for { // taken by the verifier
			select {
			case <-a.held.jobs:
				continue
			default:
			}
			break
		}
		return job
	}
	var seq float64
	expect := func(what string, want ...heldOut) {
		t.Helper()
		got := heldRecords(t, &buf, &seq)
		if len(got) != len(want) {
			t.Fatalf("%s: got %+v, want %+v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: record %d: got %+v, want %+v", what, i, got[i], want[i])
			}
		}
	}

	ja := put("/a", watch.ActionCreated, marked)
	put("/b", watch.ActionModified, plain)
	expect("a later record of another file", heldOut{"/b", "modified", "", ""})
	put("/a", watch.ActionModified, plain)
	expect("a later record of the same file waits")
	a.verdict(verdictMsg{ja.id, &verdict{result: verifyMatch}})
	expect("the verdict", heldOut{"/a", "created", "match", ""}, heldOut{"/a", "modified", "", ""})

	// Full: two records wait; a third writes the oldest unverified.
	jc := put("/c", watch.ActionCreated, marked)
	jd := put("/d", watch.ActionCreated, marked)
	expect("two waiting")
	je := put("/e", watch.ActionCreated, marked)
	expect("the list full", heldOut{"/c", "created", "unverified", "not waited for: 2 records were waiting for a verdict"})
	a.verdict(verdictMsg{jc.id, &verdict{result: verifyMatch}})
	expect("a verdict for a record written already")
	if p := a.rt.packages; p.Waiting != 2 || p.Unverified != 1 {
		t.Errorf("Stats.Packages %+v, want 2 waiting, 1 unverified", p)
	}

	// The end: the verifier has answered what is due (the later record's
	// verdict first), then closes. Verdicts read together write their
	// records in the order they were made. (A verdict read alone writes
	// its record at once, whatever another file waits for: so the
	// verdicts are in the channel before finishHeld reads it.)
	a.held.verdicts <- verdictMsg{je.id, &verdict{result: verifyNotPackaged}}
	a.held.verdicts <- verdictMsg{jd.id, &verdict{result: verifyMismatch}}
	go func() {
		for range a.held.jobs {
		}
		close(a.held.verdicts)
	}()
	a.finishHeld()
	expect("the end", heldOut{"/d", "created", "mismatch", ""}, heldOut{"/e", "created", "not-packaged", ""})
}

// TestVerifierSettles: the verifier's goroutine gives a verdict that is
// not a match once the database changed after the change (and no manager
// holds its lock), or at the deadline with its last check, never before.
func TestVerifierSettles(t *testing.T) {
	admin := t.TempDir()
	for _, d := range []string{"info", "updates"} {
		if err := os.Mkdir(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	status := filepath.Join(admin, "status")
	old := time.Now().Add(-time.Hour)
	if err := os.WriteFile(status, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{status, filepath.Join(admin, "info"), filepath.Join(admin, "updates")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	v := newVerifier(config.Packages{Verify: true, Root: "/", DpkgAdmindir: admin, RpmDBPath: t.TempDir(),
		Settle: config.Duration{Duration: time.Minute}}, zerolog.Nop())
	jobs, out := make(chan *verifyJob, 4), make(chan verdictMsg, 4)
	go v.run(jobs, out)
	now := time.Now()
	jobs <- &verifyJob{id: 1, mgr: 1, c: content{path: "/srv/x", sha256: "x"}, at: now, deadline: now.Add(time.Minute)}
	jobs <- &verifyJob{id: 2, mgr: 1, c: content{path: "/srv/y", sha256: "x"}, at: now, deadline: now.Add(300 * time.Millisecond)}
	select {
	case m := <-out:
		if m.id != 2 || m.v.result != verifyNotPackaged {
			t.Fatalf("first verdict: %d %+v, want job 2 at its deadline, not-packaged", m.id, m.v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no verdict at the deadline")
	}
	select {
	case m := <-out:
		t.Fatalf("job 1 decided before the database changed: %+v", m.v)
	case <-time.After(200 * time.Millisecond):
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(status, later, later); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-out:
		if m.id != 1 || m.v.result != verifyNotPackaged {
			t.Fatalf("after the database changed: %d %+v", m.id, m.v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no verdict after the database changed")
	}
	close(jobs)
	if _, ok := <-out; ok {
		t.Error("out not closed after jobs")
	}
}
