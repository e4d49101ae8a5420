package agent

import (
	"strings"
	"sync"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// lossCounters is the part of the sensor that says what the kernel tried to
// emit: its lost-record counters and, per watch entry, its match counts.
type lossCounters interface {
	Counters() (sensor.Counters, error)
	Entries() ([]sensor.Entry, error)
	// Unmatched counts the records the sensor read and passed over
	// itself (another file's, by its path).
	Unmatched() uint64
}

// lossTracker counts, per watch id, the records read from the ring buffer
// and those the pipeline's queue could not take, and tells from the
// kernel's counters which watch entries lost records since it last looked.
// The ring buffer reader and the loop both use it.
type lossTracker struct {
	k  lossCounters
	mu sync.Mutex
	// received counts the records read per watch id: against the kernel's
	// per-entry match counters it tells which entries lost records.
	received map[uint64]uint64
	dirty    map[uint64]struct{} // watch ids whose records were dropped
	// handed counts the records the reader is done with: queued, dropped,
	// the self-test's or undecodable. With the sensor's unmatched ones it
	// is compared with the kernel's emitted count (caughtUp).
	handed uint64
	// queued counts, per watch id, the records in the pipeline's queue:
	// a file with one on its way is not re-read (checkLoss).
	queued  map[uint64]int
	dropped uint64 // records the queue could not take since collect
	// droppedTotal and lost count the queue's and the kernel's losses, ever.
	droppedTotal, lost uint64
	skipped            uint64 // the part of lost that were runs the kernel skipped, ever
	// gaps are the skipped runs of programs that emit no file record, ever,
	// by what they lose ("lineage", "cgroup").
	gaps map[string]uint64
}

func newLossTracker(k lossCounters) *lossTracker {
	return &lossTracker{k: k, received: map[uint64]uint64{}, dirty: map[uint64]struct{}{}, gaps: map[string]uint64{},
		queued: map[uint64]int{}}
}

// read counts a record for watch id as the reader hands it to the queue,
// before the pipeline can take it (one lock per record on the reader's
// path): it is counted queued until taken, or until drop says the queue
// could not take it. Counted handed a moment before it is in the queue,
// it is already counted queued, so a re-read leaves its file to it.
func (l *lossTracker) read(id uint64) {
	l.mu.Lock()
	l.received[id]++
	l.handed++
	l.queued[id]++
	l.mu.Unlock()
}

// taken counts a record for watch id taken from the queue by the pipeline.
func (l *lossTracker) taken(id uint64) {
	l.mu.Lock()
	if l.queued[id]--; l.queued[id] <= 0 {
		delete(l.queued, id)
	}
	l.mu.Unlock()
}

// queuedFor reports whether a record for watch id waits in the queue.
func (l *lossTracker) queuedFor(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued[id] > 0
}

// drop counts a record for watch id, read, that the queue could not take.
func (l *lossTracker) drop(id uint64) {
	l.mu.Lock()
	if l.queued[id]--; l.queued[id] <= 0 {
		delete(l.queued, id)
	}
	l.dropped++
	l.droppedTotal++
	l.dirty[id] = struct{}{}
	l.mu.Unlock()
}

// other counts a record the reader is done with that goes to no queue
// (the self-test's, or one that did not decode).
func (l *lossTracker) other() {
	l.mu.Lock()
	l.handed++
	l.mu.Unlock()
}

// emitted is the number of records the kernel has put in the ring buffer.
func (l *lossTracker) emitted() (uint64, error) {
	c, err := l.k.Counters()
	if err != nil {
		return 0, err
	}
	return c.TotalEmitted(), nil
}

// caughtUp reports whether the reader is done with the first n records
// the kernel emitted: they are in the pipeline's queue (or were dropped
// and counted).
func (l *lossTracker) caughtUp(n uint64) bool {
	u := l.k.Unmatched()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handed+u >= n
}

// totals are the records lost in the queue and in the kernel, ever.
func (l *lossTracker) totals() (queue, kernel uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.droppedTotal, l.lost
}

// loss is what was lost since the last collect.
type loss struct {
	kernel, dropped uint64
	skipped         uint64 // of kernel: program runs the kernel skipped
	// emitted is the kernel's count of records put in the ring buffer
	// when the loss was seen: the records of changes made before it.
	emitted uint64
	// gaps are the skipped runs of the programs that emit no file record,
	// by what they lose: nothing to re-read for them.
	gaps map[string]uint64
	// dirty are the watch ids whose records were lost; all means the loss
	// shows on no entry (records matched through a name or a path are
	// counted on no inode entry): every file must be re-read.
	dirty map[uint64]struct{}
	all   bool
}

func (l *loss) addGap(g string, n uint64) {
	if l.gaps == nil {
		l.gaps = map[string]uint64{}
	}
	l.gaps[g] += n
}

// files reports whether records of files were lost (else only gaps).
func (l *loss) files() bool { return l.kernel > 0 || l.dropped > 0 }

// concerns reports whether the file of watch id must be re-read.
func (l *loss) concerns(id uint64) bool {
	_, ok := l.dirty[id]
	return ok || l.all
}

// collect returns what was lost since it was last called, and false when
// nothing was. The kernel counts, per watch entry, the records it tried to
// emit; an entry whose count exceeds the records read for it lost some.
func (l *lossTracker) collect() (loss, bool) {
	c, err := l.k.Counters()
	if err != nil {
		return loss{}, false
	}
	kernelLost, skipped := c.TotalLost(), c.Skipped()
	l.mu.Lock()
	out := loss{kernel: kernelLost - l.lost, skipped: skipped - l.skipped, dropped: l.dropped, dirty: l.dirty,
		emitted: c.TotalEmitted()}
	l.dropped = 0
	l.dirty = map[uint64]struct{}{}
	l.lost, l.skipped = kernelLost, skipped
	for key, n := range c.Gaps {
		g, _, _ := strings.Cut(key, ":")
		out.addGap(g, n)
	}
	for g, n := range out.gaps { // the totals now; minus those already reported
		out.gaps[g] = n - l.gaps[g]
		l.gaps[g] = n
		if out.gaps[g] == 0 {
			delete(out.gaps, g)
		}
	}
	l.mu.Unlock()
	if out.kernel == 0 && out.dropped == 0 {
		return out, len(out.gaps) > 0
	}
	if out.kernel > 0 {
		matches := map[uint64]uint64{}
		if ents, err := l.k.Entries(); err == nil {
			for _, e := range ents {
				matches[e.ID] += e.Matches
			}
		}
		l.mu.Lock()
		found := false
		for id, m := range matches {
			if m > l.received[id] {
				out.dirty[id] = struct{}{}
				found = true
			}
		}
		l.mu.Unlock()
		out.all = !found
	}
	return out, true
}
