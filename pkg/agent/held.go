package agent

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// maxHeld bounds the records held for a package verdict (with those of the
// same files waiting behind them). A held record keeps no file content:
// its md5 is made before it is held.
const maxHeld = 8192

// held are the change records waiting for their package verdict, in the
// order the pipeline made them, and the records of the same files that
// came after them: a file's records are written in order, and no other
// record waits (pipeline goroutine only). The checks run in the
// verifier's goroutine (package.go, run).
type held struct {
	list  []*heldRecord
	byID  map[uint64]*heldRecord
	paths map[string]int // held records per file.path
	next  uint64
	max   int
	// jobs go to the verifier; verdicts come back.
	jobs     chan *verifyJob
	verdicts chan verdictMsg
	settle   time.Duration
}

// PackageStats is the package verification's queue.
type PackageStats struct {
	// Waiting is the records waiting for a package verdict now, with
	// those of their files behind them.
	Waiting int `json:"waiting"`
	// Unverified counts the records written without waiting for their
	// verdict (verified "unverified": the queue was full, or vigil stopped).
	Unverified uint64 `json:"unverified"`
}

// noteHeld publishes the queue's state for Stats.
func (a *Agent) noteHeld(unverified uint64) {
	a.mu.Lock()
	a.rt.packages.Waiting = len(a.held.list)
	a.rt.packages.Unverified += unverified
	a.mu.Unlock()
}

// heldRecord is one record not written yet: ready once it has its verdict
// (or needs none and waits behind an earlier record of its file).
type heldRecord struct {
	id    uint64
	ch    watch.Change
	b     *burst
	sn    seen
	ready bool
}

func newHeld(settle time.Duration, max int) *held {
	return &held{byID: map[uint64]*heldRecord{}, paths: map[string]int{}, max: max, settle: settle,
		jobs: make(chan *verifyJob, max), verdicts: make(chan verdictMsg, max)}
}

// record writes a change record now, or holds it: until its package
// verdict is known when job is set, or behind an earlier held record of
// the same file.
func (a *Agent) record(ch watch.Change, b *burst, sn *seen, job *verifyJob) {
	h := a.held
	if h == nil || (job == nil && h.paths[ch.File.Path] == 0) {
		a.write(ch, b, sn)
		return
	}
	if len(h.list) >= h.max {
		a.forceOldest(fmt.Sprintf("not waited for: %d records were waiting for a verdict", len(h.list)))
	}
	f := *ch.File // the record's own copy
	ch.File = &f
	h.next++
	r := &heldRecord{id: h.next, ch: ch, b: b, sn: *sn, ready: job == nil}
	r.sn.data = nil
	if job != nil {
		job.id = r.id
		if job.c.data != nil {
			sum := md5.Sum(job.c.data)
			job.md5 = hex.EncodeToString(sum[:])
			job.c.data = nil
		}
		job.deadline = time.Now().Add(h.settle)
		select {
		case h.jobs <- job:
		default:
			r.ready = true
			r.sn.pkg = &verdict{result: verifyUnverified, problem: "not waited for: the verifier's queue was full"}
			a.noteHeld(1)
		}
	}
	h.list = append(h.list, r)
	h.byID[r.id] = r
	h.paths[f.Path]++
	if r.ready {
		a.flushHeld()
	} else {
		a.noteHeld(0)
	}
}

// verdict applies a verdict from the verifier, and those that came with
// it, then writes what is ready.
func (a *Agent) verdict(m verdictMsg) {
	for {
		if r := a.held.byID[m.id]; r != nil && !r.ready {
			r.sn.pkg, r.ready = m.v, true
		}
		select {
		case next, ok := <-a.held.verdicts:
			if ok {
				m = next
				continue
			}
		default:
		}
		break
	}
	a.flushHeld()
}

// flushHeld writes every held record that is ready and has no earlier
// held record of its file.
func (a *Agent) flushHeld() {
	h := a.held
	var blocked map[string]bool
	kept := h.list[:0]
	for _, r := range h.list {
		p := r.ch.File.Path
		if r.ready && !blocked[p] {
			a.write(r.ch, r.b, &r.sn)
			delete(h.byID, r.id)
			if h.paths[p]--; h.paths[p] <= 0 {
				delete(h.paths, p)
			}
			continue
		}
		if blocked == nil {
			blocked = map[string]bool{}
		}
		blocked[p] = true
		kept = append(kept, r)
	}
	for i := len(kept); i < len(h.list); i++ {
		h.list[i] = nil
	}
	h.list = kept
	a.noteHeld(0)
}

// forceOldest writes the oldest held record now, without its verdict when
// it has none yet (verified "unverified", problem why), and what was
// waiting behind it.
func (a *Agent) forceOldest(why string) {
	h := a.held
	if len(h.list) == 0 {
		return
	}
	if r := h.list[0]; !r.ready {
		r.ready = true
		r.sn.pkg = &verdict{result: verifyUnverified, problem: why}
		a.noteHeld(1)
	}
	a.flushHeld()
}

// finishHeld, at the end, waits for the verdicts still due (each at most
// packages.settle) and writes every held record.
func (a *Agent) finishHeld() {
	h := a.held
	if h == nil {
		return
	}
	close(h.jobs)
	for m := range h.verdicts {
		a.verdict(m)
	}
	for len(h.list) > 0 {
		a.forceOldest("not waited for: vigil stopped")
	}
	a.held = nil
}

// write writes a change record.
func (a *Agent) write(ch watch.Change, b *burst, sn *seen) {
	a.rec.change(ch, b, sn)
	a.observeLatency(b.last)
	a.mu.Lock()
	a.live++
	a.mu.Unlock()
	if k := consumer.Kind(ch.File.Kind); k == consumer.KindPasswd || k == consumer.KindGroup {
		a.rec.forgetNames()
	}
}
