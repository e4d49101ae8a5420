package agent

import (
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// fakeClock drives a coalescer's now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time               { return c.t }
func (c *fakeClock) advance(d time.Duration)      { c.t = c.t.Add(d) }
func (c *fakeClock) at(d time.Duration) time.Time { return time.Unix(1000, 0).Add(d) }

func newTestCoalescer(window time.Duration) (*coalescer, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c := newCoalescer(window)
	c.now = clk.now
	return c, clk
}

func write(path string) (watch.Change, *sensor.Event) {
	return watch.Change{File: &watch.File{Path: path}, Action: "modified"},
		&sensor.Event{Op: sensor.OpWrite, Proc: sensor.Process{PID: 42, Exe: "/usr/bin/tee"}}
}

func writeBy(path string, pid uint32) (watch.Change, *sensor.Event) {
	ch, e := write(path)
	e.Proc.PID = pid
	return ch, e
}

func burstPaths(bs []*burst) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.change.File.Path)
	}
	return out
}

func samePaths(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCoalesceWindow(t *testing.T) {
	c, clk := newTestCoalescer(100 * time.Millisecond)
	var events []*sensor.Event
	for i, pid := range []uint32{1, 2, 1} {
		ch, e := writeBy("/etc/passwd", pid)
		if b := c.add(ch, e); b != nil {
			t.Fatalf("write %d came out at once", i)
		}
		events = append(events, e)
		clk.advance(30 * time.Millisecond)
	}
	if got := c.due(clk.at(99 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("due before the window closed: %v", burstPaths(got))
	}
	got := c.due(clk.at(100 * time.Millisecond))
	if len(got) != 1 {
		t.Fatalf("due at the deadline: %d bursts", len(got))
	}
	b := got[0]
	if b.count != 3 || len(b.events) != 3 || b.last != events[2] || b.change.File.Path != "/etc/passwd" {
		t.Fatalf("burst: count %d, %d events, last %p (want %p)", b.count, len(b.events), b.last, events[2])
	}
	for i := range events {
		if b.events[i] != events[i] {
			t.Fatalf("event %d out of order", i)
		}
	}
	if len(b.actors) != 2 || b.counts[actorKey{1, "/usr/bin/tee"}] != 2 || b.counts[actorKey{2, "/usr/bin/tee"}] != 1 {
		t.Fatalf("actors %d, counts %v", len(b.actors), b.counts)
	}
	if got := c.due(clk.at(time.Hour)); len(got) != 0 {
		t.Fatalf("a burst came out twice")
	}
	// The next write opens a new window.
	ch, e := write("/etc/passwd")
	clk.t = clk.at(time.Second)
	c.add(ch, e)
	if got := c.due(clk.at(time.Second + 100*time.Millisecond)); len(got) != 1 || got[0].count != 1 {
		t.Fatalf("new window: %d bursts", len(got))
	}
}

func TestCoalesceDueOldestFirst(t *testing.T) {
	c, clk := newTestCoalescer(100 * time.Millisecond)
	for _, p := range []string{"/b", "/a", "/c"} {
		c.add(write(p))
		clk.advance(10 * time.Millisecond)
	}
	c.add(write("/b")) // does not move /b's deadline
	tests := []struct {
		at   time.Duration
		want []string
	}{
		{50 * time.Millisecond, nil},
		{100 * time.Millisecond, []string{"/b"}},
		{100 * time.Millisecond, nil},
		{500 * time.Millisecond, []string{"/a", "/c"}},
	}
	for _, tc := range tests {
		if got := burstPaths(c.due(clk.at(tc.at))); !samePaths(got, tc.want) {
			t.Fatalf("due(+%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestCoalesceFlush(t *testing.T) {
	c, clk := newTestCoalescer(100 * time.Millisecond)
	c.add(write("/a"))
	c.add(write("/a"))
	clk.advance(10 * time.Millisecond)
	c.add(write("/b"))
	if b := c.flush("/nothing"); b != nil {
		t.Fatal("flush of a file with no burst")
	}
	b := c.flush("/a")
	if b == nil || b.count != 2 || b.change.File.Path != "/a" {
		t.Fatalf("flush = %+v", b)
	}
	if b := c.flush("/a"); b != nil {
		t.Fatal("flushed twice")
	}
	// A write after the flush opens a window after /b's.
	clk.advance(10 * time.Millisecond)
	c.add(write("/a"))
	if got := burstPaths(c.due(clk.at(time.Hour))); !samePaths(got, []string{"/b", "/a"}) {
		t.Errorf("due = %v, want [/b /a]", got)
	}

	// all() takes each burst out once, oldest first.
	c.add(write("/a"))
	clk.advance(10 * time.Millisecond)
	c.add(write("/b"))
	c.flush("/a")
	c.add(write("/a"))
	got := c.all()
	if !samePaths(burstPaths(got), []string{"/b", "/a"}) {
		t.Fatalf("all = %v, want [/b /a]", burstPaths(got))
	}
	if got[1].count != 1 {
		t.Fatalf("/a after the flush: count %d", got[1].count)
	}
	if len(c.all()) != 0 || len(c.due(clk.at(time.Hour))) != 0 {
		t.Fatal("bursts left after all()")
	}
	c.add(write("/a"))
	if got := c.due(clk.at(time.Hour)); len(got) != 1 || got[0].count != 1 {
		t.Fatalf("a write after all(): %d bursts", len(got))
	}
}

func TestCoalesceNoWindow(t *testing.T) {
	c, _ := newTestCoalescer(0)
	for i := 0; i < 3; i++ {
		ch, e := write("/etc/shadow")
		b := c.add(ch, e)
		if b == nil {
			t.Fatalf("write %d held back with no window", i)
		}
		if b.count != 1 || len(b.events) != 1 || b.events[0] != e || b.last != e || len(b.actors) != 1 {
			t.Fatalf("burst %+v", b)
		}
	}
	if len(c.all()) != 0 {
		t.Fatal("no window, yet something was kept")
	}
}

func TestCoalesceMaxEvents(t *testing.T) {
	c, clk := newTestCoalescer(time.Second)
	n := maxBurstEvents + 10
	var first, last *sensor.Event
	for i := 0; i < n; i++ {
		ch, e := writeBy("/var/log/big", uint32(i%3))
		if i == 0 {
			first = e
		}
		last = e
		c.add(ch, e)
	}
	got := c.due(clk.at(time.Second))
	if len(got) != 1 {
		t.Fatalf("%d bursts", len(got))
	}
	b := got[0]
	if b.count != n || len(b.events) != maxBurstEvents || b.events[0] != first || b.last != last {
		t.Fatalf("count %d (want %d), %d events (want %d)", b.count, n, len(b.events), maxBurstEvents)
	}
	total := 0
	for _, k := range b.counts {
		total += k
	}
	if len(b.actors) != 3 || total != n {
		t.Fatalf("%d actors, counts add to %d", len(b.actors), total)
	}
}
