package agent

import (
	"sync"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// lossCounters is the part of the sensor that says what the kernel tried to
// emit: its lost-record counters and, per watch entry, its match counts.
type lossCounters interface {
	Counters() (sensor.Counters, error)
	Entries() ([]sensor.Entry, error)
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
	dropped  uint64              // records the queue could not take since collect
	// droppedTotal and lost count the queue's and the kernel's losses, ever.
	droppedTotal, lost uint64
	skipped            uint64 // the part of lost that were runs the kernel skipped, ever
}

func newLossTracker(k lossCounters) *lossTracker {
	return &lossTracker{k: k, received: map[uint64]uint64{}, dirty: map[uint64]struct{}{}}
}

// read counts a record read for watch id.
func (l *lossTracker) read(id uint64) {
	l.mu.Lock()
	l.received[id]++
	l.mu.Unlock()
}

// drop counts a record for watch id that the queue could not take.
func (l *lossTracker) drop(id uint64) {
	l.mu.Lock()
	l.dropped++
	l.droppedTotal++
	l.dirty[id] = struct{}{}
	l.mu.Unlock()
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
	// dirty are the watch ids whose records were lost; all means the loss
	// shows on no entry (records matched through a name or a path are
	// counted on no inode entry): every file must be re-read.
	dirty map[uint64]struct{}
	all   bool
}

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
	out := loss{kernel: kernelLost - l.lost, skipped: skipped - l.skipped, dropped: l.dropped, dirty: l.dirty}
	l.dropped = 0
	l.dirty = map[uint64]struct{}{}
	l.lost, l.skipped = kernelLost, skipped
	l.mu.Unlock()
	if out.kernel == 0 && out.dropped == 0 {
		return out, false
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
