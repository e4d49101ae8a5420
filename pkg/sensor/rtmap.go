package sensor

import (
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// A map syscall (lookup, update, delete, iteration) holds the CPU's
// bpf_prog_active for its duration, and while it is held every kprobe
// program on that CPU is skipped: the kernel counts a miss and runs
// nothing. A kernel that preempts in kernel mode (PREEMPT_LAZY, Debian's 7.x
// default) can preempt vigil inside such a syscall, and then the programs
// of every task that runs on that CPU until vigil gets it back are skipped:
// writes, renames, deletions that vigil never sees live.
//
// So every map syscall of the sensor runs on one OS thread scheduled
// SCHED_FIFO (the lowest real-time priority): an ordinary task cannot
// preempt it, and the window closes. The thread only runs map syscalls, each
// a few microseconds, so it cannot starve anything. Where the real-time
// policy is refused (a container without CAP_SYS_NICE, systemd's
// RestrictRealtime=), the syscalls still run there, and the sensor says so
// (Info.MapThread).
type sysThread struct {
	calls chan func()
	// Policy is "fifo" when the thread runs SCHED_FIFO, else why not.
	policy string
	mu     sync.RWMutex
	closed bool
}

func newSysThread() *sysThread {
	t := &sysThread{calls: make(chan func())}
	ready := make(chan string)
	go func() {
		// Never unlocked: the thread ends with this goroutine, so its
		// scheduling policy never leaks to other goroutines.
		runtime.LockOSThread()
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			ready <- "SCHED_FIFO refused: " + err.Error()
		} else {
			ready <- "fifo"
		}
		for f := range t.calls {
			f()
		}
	}()
	t.policy = <-ready
	return t
}

// do runs f on the thread and waits for it. After stop it runs nothing
// and returns ErrClosed.
func (t *sysThread) do(f func()) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	done := make(chan struct{})
	t.calls <- func() {
		f()
		close(done)
	}
	<-done
	return nil
}

func (t *sysThread) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.calls)
	}
}

// rtMap is an ebpf.Map whose syscalls run on the sensor's map thread.
type rtMap struct {
	m *ebpf.Map
	t *sysThread
}

func (t *sysThread) wrap(m *ebpf.Map) *rtMap {
	if m == nil {
		return nil
	}
	return &rtMap{m: m, t: t}
}

func (r *rtMap) Lookup(k, v any) (err error) {
	if e := r.t.do(func() { err = r.m.Lookup(k, v) }); e != nil {
		return e
	}
	return err
}

func (r *rtMap) Update(k, v any, flags ebpf.MapUpdateFlags) (err error) {
	if e := r.t.do(func() { err = r.m.Update(k, v, flags) }); e != nil {
		return e
	}
	return err
}

func (r *rtMap) Delete(k any) (err error) {
	if e := r.t.do(func() { err = r.m.Delete(k) }); e != nil {
		return e
	}
	return err
}

func (r *rtMap) MaxEntries() uint32 { return r.m.MaxEntries() }

// Iterate walks the map, each step on the map thread.
func (r *rtMap) Iterate() *rtIterator {
	var it *ebpf.MapIterator
	err := r.t.do(func() { it = r.m.Iterate() })
	return &rtIterator{it: it, t: r.t, err: err}
}

type rtIterator struct {
	it  *ebpf.MapIterator
	t   *sysThread
	err error
}

func (i *rtIterator) Next(k, v any) (ok bool) {
	if i.err != nil {
		return false
	}
	if err := i.t.do(func() { ok = i.it.Next(k, v) }); err != nil {
		i.err = err
		return false
	}
	return ok
}

func (i *rtIterator) Err() error {
	if i.err != nil {
		return i.err
	}
	return i.it.Err()
}
