package sensor

import (
	"runtime"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// A map syscall (lookup, update, delete, iteration) holds the CPU's
// bpf_prog_active for its duration, and while it is held every kprobe
// program on that CPU, and every perf-event tracepoint program, is skipped:
// the kernel counts a miss and runs nothing. A kernel that preempts in
// kernel mode (PREEMPT_LAZY, Debian's 7.x default) can preempt vigil inside
// such a syscall, and then the programs of every task that runs on that CPU
// until vigil gets it back are skipped: writes, renames, deletions that
// vigil never sees live.
//
// So every map syscall of the sensor runs with its thread scheduled
// SCHED_FIFO (the lowest real-time priority), which no ordinary task
// preempts, and the window closes: the goroutine is locked to its thread,
// the thread raised, the syscall made, the thread's own policy put back.
// Only map syscalls run raised, each a few microseconds, so nothing can
// starve. Where the real-time policy is refused (a container without
// CAP_SYS_NICE, systemd's RestrictRealtime=), the syscalls run as they are,
// and the sensor says so (Info.MapThread).
type rtPolicy struct {
	// policy is "fifo" when map syscalls run SCHED_FIFO, else why not.
	policy string
	ok     bool
}

var fifo = unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}

func newRTPolicy() *rtPolicy {
	p := &rtPolicy{ok: true, policy: "fifo"}
	p.run(func() {})
	return p
}

// run calls f with the calling thread at SCHED_FIFO, and puts the thread's
// policy back after.
func (p *rtPolicy) run(f func()) {
	if !p.ok {
		f()
		return
	}
	runtime.LockOSThread()
	old, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		runtime.UnlockOSThread()
		p.ok, p.policy = false, "reading the thread's policy: "+err.Error()
		f()
		return
	}
	if err := unix.SchedSetAttr(0, &fifo, 0); err != nil {
		runtime.UnlockOSThread()
		p.ok, p.policy = false, "SCHED_FIFO refused: "+err.Error()
		f()
		return
	}
	f()
	old.Size = unix.SizeofSchedAttr
	if err := unix.SchedSetAttr(0, old, 0); err != nil {
		// The thread stays raised: keep it to this goroutine (it ends
		// with it) rather than hand it to others.
		return
	}
	runtime.UnlockOSThread()
}

// rtMap is an ebpf.Map whose syscalls run at SCHED_FIFO.
type rtMap struct {
	m *ebpf.Map
	p *rtPolicy
}

func (p *rtPolicy) wrap(m *ebpf.Map) *rtMap {
	if m == nil {
		return nil
	}
	return &rtMap{m: m, p: p}
}

func (r *rtMap) Lookup(k, v any) (err error) {
	r.p.run(func() { err = r.m.Lookup(k, v) })
	return err
}

func (r *rtMap) Update(k, v any, flags ebpf.MapUpdateFlags) (err error) {
	r.p.run(func() { err = r.m.Update(k, v, flags) })
	return err
}

func (r *rtMap) Delete(k any) (err error) {
	r.p.run(func() { err = r.m.Delete(k) })
	return err
}

func (r *rtMap) MaxEntries() uint32 { return r.m.MaxEntries() }

// ForEach walks the whole map at SCHED_FIFO, calling f after each entry is
// read into k and v.
func (r *rtMap) ForEach(k, v any, f func()) (err error) {
	r.p.run(func() {
		it := r.m.Iterate()
		for it.Next(k, v) {
			f()
		}
		err = it.Err()
	})
	return err
}
