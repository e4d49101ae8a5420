package agent

import (
	"time"

	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// maxBurstEvents bounds the records a burst keeps for its actor list; the
// count covers them all.
const maxBurstEvents = 256

// burst is the writes to one file gathered within the window.
type burst struct {
	change   watch.Change
	events   []*sensor.Event // the first maxBurstEvents, for timing
	last     *sensor.Event
	count    int
	deadline time.Time
	// Every distinct actor with its own count, however long the burst.
	actors []*sensor.Event
	counts map[actorKey]int
}

type actorKey struct {
	pid uint32
	exe string
}

func (b *burst) addActor(e *sensor.Event) {
	if b.counts == nil {
		b.counts = map[actorKey]int{}
	}
	k := actorKey{e.Proc.PID, e.Proc.Exe}
	if b.counts[k] == 0 {
		b.actors = append(b.actors, e)
	}
	b.counts[k]++
}

// fold counts the writers of another burst among b's actors (for
// ownership), without taking its events: b's first event stays the
// record's actor.
func (b *burst) fold(o *burst) {
	for _, w := range o.actors {
		b.addActor(w)
	}
}

// coalescer gathers writes per file: the first write opens a window, and
// everything written to the file before it closes becomes one record.
type coalescer struct {
	window time.Duration
	bursts map[string]*burst
	order  []string
	now    func() time.Time
}

func newCoalescer(window time.Duration) *coalescer {
	return &coalescer{window: window, bursts: map[string]*burst{}, now: time.Now}
}

// add gathers one write. With no window it returns the burst at once.
func (c *coalescer) add(ch watch.Change, e *sensor.Event) *burst {
	if c.window <= 0 {
		b := &burst{change: ch, events: []*sensor.Event{e}, last: e, count: 1}
		b.addActor(e)
		return b
	}
	p := ch.File.Path
	b := c.bursts[p]
	if b == nil {
		b = &burst{change: ch, deadline: c.now().Add(c.window)}
		c.bursts[p] = b
		c.order = append(c.order, p)
	}
	b.count++
	b.last = e
	b.addActor(e)
	if len(b.events) < maxBurstEvents {
		b.events = append(b.events, e)
	}
	return nil
}

// due returns the bursts whose window has closed, oldest first.
func (c *coalescer) due(now time.Time) []*burst {
	var out []*burst
	keep := c.order[:0]
	for _, p := range c.order {
		b := c.bursts[p]
		if b == nil {
			continue
		}
		if !now.Before(b.deadline) {
			out = append(out, b)
			delete(c.bursts, p)
			continue
		}
		keep = append(keep, p)
	}
	c.order = keep
	return out
}

// flush takes a file's burst out early (before another change to it).
func (c *coalescer) flush(path string) *burst {
	b := c.bursts[path]
	if b == nil {
		return nil
	}
	delete(c.bursts, path)
	// Its place in the order goes too: a later write opens a new window
	// at the end, and all() must not find the path twice.
	for i, p := range c.order {
		if p == path {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	return b
}

// pending reports whether a burst for path is gathering.
func (c *coalescer) pending(path string) bool { return c.bursts[path] != nil }

// all takes every burst out, oldest first.
func (c *coalescer) all() []*burst {
	var out []*burst
	for _, p := range c.order {
		if b := c.bursts[p]; b != nil {
			out = append(out, b)
		}
	}
	c.bursts = map[string]*burst{}
	c.order = nil
	return out
}
