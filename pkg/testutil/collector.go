package testutil

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Collector reads every record of a sensor in the background so tests can
// wait for the ones they caused.
type Collector struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events []*sensor.Event
	err    error
	done   chan struct{}
}

// Collect starts reading s until it is closed.
func Collect(s *sensor.Sensor) *Collector {
	c := &Collector{done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		defer close(c.done)
		for {
			e, err := s.Read()
			c.mu.Lock()
			if err != nil {
				if !errors.Is(err, sensor.ErrClosed) {
					c.err = err
				}
				c.cond.Broadcast()
				c.mu.Unlock()
				return
			}
			c.events = append(c.events, e)
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}()
	return c
}

// Timeout is how long a test waits for a record: generous, because the
// matrix guests are emulated.
func Timeout() time.Duration {
	if InVM() {
		return 20 * time.Second
	}
	return 5 * time.Second
}

// Mark returns a position: records after it are the ones a test caused next.
func (c *Collector) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// Since returns the records after mark that match.
func (c *Collector) Since(mark int, match func(*sensor.Event) bool) []*sensor.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*sensor.Event
	for _, e := range c.events[mark:] {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// WaitN waits until n records after mark match, and returns them; it fails
// the test on timeout.
func (c *Collector) WaitN(t testing.TB, mark, n int, match func(*sensor.Event) bool) []*sensor.Event {
	t.Helper()
	deadline := time.Now().Add(Timeout())
	timer := time.AfterFunc(Timeout(), func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		var out []*sensor.Event
		for _, e := range c.events[mark:] {
			if match(e) {
				out = append(out, e)
			}
		}
		if len(out) >= n {
			return out
		}
		if c.err != nil {
			t.Fatalf("reading records: %v", c.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d matching records, got %d", Timeout(), n, len(out))
		}
		c.cond.Wait()
	}
}

// Quiet asserts that no record after mark matches within d.
func (c *Collector) Quiet(t testing.TB, mark int, d time.Duration, match func(*sensor.Event) bool) {
	t.Helper()
	time.Sleep(d)
	if got := c.Since(mark, match); len(got) > 0 {
		t.Fatalf("expected no records, got %d, first: %+v", len(got), *got[0])
	}
}
