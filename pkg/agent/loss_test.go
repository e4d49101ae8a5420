package agent

import (
	"reflect"
	"testing"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// fakeCounters is what the kernel says it tried to emit.
type fakeCounters struct {
	lost, emitted, unmatched uint64
	gaps                     map[string]uint64
	entries                  []sensor.Entry
}

func (f *fakeCounters) Counters() (sensor.Counters, error) {
	return sensor.Counters{Lost: map[string]uint64{"vfs_write": f.lost},
		Emitted: map[string]uint64{"vfs_write": f.emitted - 1, "vfs_rename": 1}, Gaps: f.gaps}, nil
}

func (f *fakeCounters) Unmatched() uint64 { return f.unmatched }

func (f *fakeCounters) Entries() ([]sensor.Entry, error) { return f.entries, nil }

func TestLossTracker(t *testing.T) {
	k := &fakeCounters{emitted: 5, entries: []sensor.Entry{{ID: 1, Matches: 3}, {ID: 2, Matches: 2}, {ID: 2, Matches: 1}}}
	l := newLossTracker(k)
	for _, id := range []uint64{1, 1, 1, 2, 2} {
		l.read(id)
	}
	if _, ok := l.collect(); ok {
		t.Fatal("a loss with nothing lost")
	}

	// The kernel lost two records: entry 2 made the kernel try 3 and 2 were
	// read, entry 1 lost none; the queue dropped one of entry 7's.
	k.lost = 2
	l.read(7)
	l.drop(7)
	got, ok := l.collect()
	want := loss{kernel: 2, dropped: 1, dirty: map[uint64]struct{}{2: {}, 7: {}}, emitted: 5}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("collect = %+v, %v; want %+v", got, ok, want)
	}
	if !got.concerns(2) || !got.concerns(7) || got.concerns(1) {
		t.Fatalf("concerns: %+v", got)
	}
	if q, kern := l.totals(); q != 1 || kern != 2 {
		t.Fatalf("totals = %d, %d; want 1, 2", q, kern)
	}
	if _, ok := l.collect(); ok {
		t.Fatal("the same loss reported twice")
	}

	// A loss no entry shows (records matched through a name or a path):
	// every file is re-read.
	for i := 0; i < 3; i++ {
		l.read(2)
	}
	k.lost = 3
	got, ok = l.collect()
	if !ok || got.kernel != 1 || !got.all || !got.concerns(42) {
		t.Fatalf("collect = %+v, %v; want one lost, all", got, ok)
	}
}

// TestLossGaps: skipped runs of the programs that emit no file record are
// reported once each, by what they lose, and ask for no re-read.
func TestLossGaps(t *testing.T) {
	k := &fakeCounters{emitted: 1}
	l := newLossTracker(k)
	k.gaps = map[string]uint64{"lineage:vg_pkg_exit": 2, "lineage:vg_pkg_fork": 1, "cgroup:vg_cgroup_mkdir": 1}
	got, ok := l.collect()
	if !ok || got.files() || !reflect.DeepEqual(got.gaps, map[string]uint64{"lineage": 3, "cgroup": 1}) {
		t.Fatalf("collect = %+v, %v; want gaps lineage 3, cgroup 1, no file record lost", got, ok)
	}
	if got.concerns(1) {
		t.Fatal("a gap asks for a re-read")
	}
	if got, ok := l.collect(); ok {
		t.Fatalf("the same gaps reported twice: %+v", got)
	}
	k.gaps["lineage:vg_pkg_fork"]++
	k.lost = 1
	got, ok = l.collect()
	if !ok || !got.files() || !reflect.DeepEqual(got.gaps, map[string]uint64{"lineage": 1}) {
		t.Fatalf("collect = %+v, %v; want one record lost and one lineage gap", got, ok)
	}
}

// TestLossCaughtUp: the reader has caught up with the kernel once every
// record it emitted was queued, dropped, passed over by the sensor or
// taken by the self-test (or did not decode).
func TestLossCaughtUp(t *testing.T) {
	k := &fakeCounters{emitted: 6}
	l := newLossTracker(k)
	n, err := l.emitted()
	if err != nil || n != 6 {
		t.Fatalf("emitted = %d, %v; want 6", n, err)
	}
	steps := []func(){
		func() { l.read(1) }, func() { l.read(2) }, func() { l.read(2); l.drop(2) },
		func() { l.other() }, func() { k.unmatched++ }, func() { l.other() },
	}
	for i, step := range steps {
		if l.caughtUp(n) {
			t.Fatalf("caught up after %d of 6 records", i)
		}
		step()
	}
	if !l.caughtUp(n) {
		t.Fatal("not caught up after all 6 records")
	}
	// received still counts dropped records (the entries' comparison).
	if l.received[2] != 2 {
		t.Fatalf("received[2] = %d, want 2", l.received[2])
	}
	// Records in the queue: 1 and 2 (queued), none of 7; the pipeline
	// takes them, and then none waits.
	if !l.queuedFor(1) || !l.queuedFor(2) || l.queuedFor(7) {
		t.Fatalf("queued %v, want ids 1 and 2", l.queued)
	}
	l.taken(1)
	l.taken(2)
	l.read(3)
	l.taken(3)
	if l.queuedFor(1) || l.queuedFor(2) || l.queuedFor(3) {
		t.Fatalf("queued %v after every record was taken, want none", l.queued)
	}
}
