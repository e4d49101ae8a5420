package agent

import (
	"reflect"
	"testing"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// fakeCounters is what the kernel says it tried to emit.
type fakeCounters struct {
	lost    uint64
	entries []sensor.Entry
}

func (f *fakeCounters) Counters() (sensor.Counters, error) {
	return sensor.Counters{Lost: map[string]uint64{"vfs_write": f.lost}}, nil
}

func (f *fakeCounters) Entries() ([]sensor.Entry, error) { return f.entries, nil }

func TestLossTracker(t *testing.T) {
	k := &fakeCounters{entries: []sensor.Entry{{ID: 1, Matches: 3}, {ID: 2, Matches: 2}, {ID: 2, Matches: 1}}}
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
	l.drop(7)
	got, ok := l.collect()
	want := loss{kernel: 2, dropped: 1, dirty: map[uint64]struct{}{2: {}, 7: {}}}
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
