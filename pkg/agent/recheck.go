package agent

import (
	"os"
	"time"

	"github.com/vigil-fim/vigil/pkg/watch"
)

// A file created in a watched tree or under a glob's directory is followed
// by its inode from the moment user space reads its created record: the
// kernel cannot follow it sooner, since only user space knows whether the
// name belongs to the watch (a glob, an exclusion). A write that entered
// the kernel before that, and whose data landed after the agent read the
// new file, was seen by neither: `echo key > authorized_keys` in a fresh
// file could leave a created record with an empty file and nothing else.
// So a created regular file that was empty when read is read once more
// shortly after, unless a record for it came meanwhile (then the kernel is
// following it). One read with content was read after a write landed:
// bursts of new files (a package unpacking a tree) are not read twice. What
// changed since the created record is reported as recovered (no actor: the
// kernel never saw the write).

// recheckDelay is how long after its created record a new file is read
// again; the loop's one-second health tick checks what is due.
const recheckDelay = 500 * time.Millisecond

// maxRechecks bounds the files waiting for their second read (a burst of
// creates); past it, new files get none, as before.
const maxRechecks = 65536

type recheck struct {
	file watch.File
	due  time.Time
}

func (a *Agent) recheckLater(f *watch.File) {
	if a.rechecks == nil {
		a.rechecks = map[string]recheck{}
	}
	if len(a.rechecks) >= maxRechecks {
		return
	}
	a.rechecks[f.Path] = recheck{file: *f, due: time.Now().Add(recheckDelay)}
}

// recheckSeen drops the second read of a file a record came for: the
// kernel follows it, and that record (or its burst) compares its content.
func (a *Agent) recheckSeen(ch watch.Change) {
	if len(a.rechecks) == 0 {
		return
	}
	delete(a.rechecks, ch.File.Path)
	if ch.SourcePath != "" {
		delete(a.rechecks, ch.SourcePath)
	}
}

// recheckCreated reads the files whose second read is due and reports a
// change found as recovered.
func (a *Agent) recheckCreated(co *coalescer, now time.Time) {
	due := false
	for _, rc := range a.rechecks {
		if !now.Before(rc.due) {
			due = true
			break
		}
	}
	if !due {
		return
	}
	// A file with a record on its way is left to it (that record drops
	// its second read).
	if n, err := a.loss.emitted(); err == nil {
		a.catchUp(n)
	}
	var recovered uint64
	for p, rc := range a.rechecks {
		if now.Before(rc.due) || co.pending(p) || a.loss.queuedFor(rc.file.Target) {
			continue
		}
		delete(a.rechecks, p)
		// Gone without a record (lost: the loss check re-reads it) or no
		// longer watched (a reload): nothing to compare here.
		if _, err := os.Lstat(p); err != nil || !a.set.Covers(p) {
			continue
		}
		f := rc.file
		sn := a.observe(&f, false)
		if len(sn.changes) > 0 || sn.attrs != nil || sn.link != nil {
			a.rec.recovered(&f, "modified", &sn)
			recovered++
		}
	}
	if recovered > 0 {
		a.mu.Lock()
		a.recovered += recovered
		a.mu.Unlock()
	}
}
