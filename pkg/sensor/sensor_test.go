//go:build privileged

package sensor_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

var nextID uint64 = 1000

func newID() uint64 { nextID++; return nextID }

// watchFile creates a file and puts its inode in the watch set.
func watchFile(t *testing.T, dir, name string) (string, sensor.Key, uint64) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		t.Fatal(err)
	}
	id := newID()
	if err := sens.WatchInode(k, id, sensor.WatchFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sens.UnwatchInode(k) })
	return p, k, id
}

// TestObjectChoice asserts which object the loader chose, so that a silent
// fallback fails the suite: when the run forces an object or hook type
// (testutil.SensorForce), exactly that; in the matrix guests, the kprobe object
// built for the running major.minor; elsewhere (the host, the forward-
// compatibility guest, whose kernel is newer than every object), the first
// candidate Order offers.
func TestObjectChoice(t *testing.T) {
	needSensor(t)
	info := sens.Info()
	facts, err := kernel.Probe()
	if err != nil {
		t.Fatal(err)
	}
	object, hooks := testutil.SensorForce()
	switch {
	case testutil.Forced():
		if object != "" && info.Object != object {
			t.Fatalf("kernel %s: loaded object %s (%s), but %s=%s forces %s; refused: %+v",
				facts.Release, info.Object, info.HookTyp, testutil.EnvObject, object, object, info.Refused)
		}
		if hooks != "" && info.HookTyp != hooks {
			t.Fatalf("kernel %s: loaded object %s (%s), but %s=%s forces %s objects; refused: %+v",
				facts.Release, info.Object, info.HookTyp, testutil.EnvHooks, hooks, hooks, info.Refused)
		}
	case testutil.InVM() && !testutil.ForwardVM():
		// The line's BPF-LSM object where the kernel runs the BPF LSM
		// (booted with lsm=...,bpf), else its fentry object; its kprobe
		// object on a kernel that preempts in kernel mode (7.x), saying why.
		family := expectedFamily(t, facts)
		want := family + "-" + facts.Version.MajorMinor()
		if family == loader.HooksKprobe {
			want = facts.Version.MajorMinor()
			if !strings.Contains(info.Why, "before the BPF-LSM and fentry objects") {
				t.Errorf("kernel %s (preemption %q from %s): the kprobe object's reason %q does not say why not fentry",
					facts.Release, facts.Preempt, facts.PreemptSource, info.Why)
			}
		}
		if info.Object != want || info.HookTyp != family {
			t.Fatalf("kernel %s (preemption %q from %s): loaded object %s (%s), want the %s object %s; refused: %+v",
				facts.Release, facts.Preempt, facts.PreemptSource, info.Object, info.HookTyp, family, want, info.Refused)
		}
	}
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The loaded object is the first candidate the kernel did not refuse:
	// every one before it was refused at load, with a reason.
	cands, _ := loader.Order(man.Objects, facts, loader.Options{Object: object, Hooks: hooks})
	reasons := map[string]string{}
	for _, r := range info.Refused {
		reasons[r.Object] = r.Reason
	}
	found := false
	for _, c := range cands {
		if c.Object.Name == info.Object {
			found = true
			break
		}
		if reasons[c.Object.Name] == "" {
			t.Fatalf("loaded %s, but the earlier candidate %s was not refused with a reason; candidates %+v, refused %+v",
				info.Object, c.Object.Name, cands, info.Refused)
		}
	}
	if !found {
		t.Fatalf("loaded %s, which is not a candidate for kernel %s: %+v; refused: %+v",
			info.Object, facts.Release, cands, info.Refused)
	}
	if !facts.Kprobes && info.HookTyp == loader.HooksKprobe {
		t.Fatalf("kernel without kprobes loaded a %s object", info.HookTyp)
	}
	if len(info.Hooks) == 0 {
		t.Fatal("no hooks attached")
	}
	if len(info.Features) == 0 {
		t.Errorf("object %s (%s): no features listed (the agent-ready record's vigil.sensor.features)", info.Object, info.HookTyp)
	}
	t.Logf("kernel %s: object %s (%s), hooks %v", facts.Release, info.Object, info.HookTyp, info.Hooks)
}

// emptyProgram asks the kernel whether it loads a program of a type that
// does nothing: nil, or its refusal.
func emptyProgram(typ ebpf.ProgramType, at ebpf.AttachType, fn string) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         typ,
		AttachType:   at,
		AttachTo:     fn,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err == nil {
		prog.Close()
	}
	return err
}

// expectedFamily is the family the loader must choose on the running
// kernel, asked of the kernel directly: the kprobe objects where it
// preempts in kernel mode and has kprobes; else BPF-LSM where the BPF LSM
// is active and loads a program; else fentry where it loads a trampoline
// program; else kprobe where it has kprobes; else the tracepoint object.
func expectedFamily(t *testing.T, f *kernel.Facts) string {
	t.Helper()
	fentryErr := emptyProgram(ebpf.Tracing, ebpf.AttachTraceFEntry, "vfs_write")
	lsmErr := emptyProgram(ebpf.LSM, ebpf.AttachLSMMac, "file_open")
	t.Logf("kernel %s: an empty fentry program: %v; an empty BPF-LSM program: %v; active LSMs %q (%s); preemption %q from %s",
		f.Release, fentryErr, lsmErr, f.LSMs, f.LSMErr, f.Preempt, f.PreemptSource)
	switch {
	case kernel.KernelPreempts(f.Preempt) && f.Kprobes:
		return loader.HooksKprobe
	case lsmErr == nil && kernel.HasLSM(f.LSMs, "bpf"):
		return loader.HooksLSM
	case fentryErr == nil:
		return loader.HooksFentry
	case f.Kprobes:
		return loader.HooksKprobe
	}
	return loader.HooksTracepoint
}

// TestFentryFallback: where the kernel refuses BPF trampoline programs
// (this development host: EPERM at load), the loader falls back past every
// fentry and BPF-LSM object, each refused with a reason naming the
// refusal, to the kprobe object or (without kprobes) the tracepoint
// object; where the kernel loads them, it chooses the family
// expectedFamily asks the kernel for. A BPF-LSM object is refused without
// a try where the BPF LSM is not active, saying so.
func TestFentryFallback(t *testing.T) {
	needSensor(t)
	if testutil.Forced() {
		t.Skip("the run forces an object or hook type: the loader's own choice is not made")
	}
	info := sens.Info()
	facts, err := kernel.Probe()
	if err != nil {
		t.Fatal(err)
	}
	want := expectedFamily(t, facts)
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, r := range info.Refused {
		reasons[r.Object] = r.Reason
	}
	if !kernel.HasLSM(facts.LSMs, "bpf") {
		for _, o := range man.Objects {
			if o.Hooks == loader.HooksLSM && !strings.Contains(reasons[o.Name], "BPF LSM is not active") &&
				!strings.Contains(reasons[o.Name], "active LSMs are unknown") {
				t.Errorf("BPF-LSM object %s on a kernel without the BPF LSM (%q): refusal %q does not say so",
					o.Name, facts.LSMs, reasons[o.Name])
			}
		}
	}
	err = emptyProgram(ebpf.Tracing, ebpf.AttachTraceFEntry, "vfs_write")
	if err == nil {
		if info.HookTyp != want {
			t.Fatalf("kernel %s (preemption %q from %s) loads fentry programs, but the loader chose %s (%s), want a %s object; refused: %+v",
				facts.Release, facts.Preempt, facts.PreemptSource, info.Object, info.HookTyp, want, info.Refused)
		}
		return
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("kernel %s: an empty fentry program on vfs_write: %v (neither loaded nor refused with EPERM)", facts.Release, err)
	}
	t.Logf("kernel %s refuses fentry programs: %v", facts.Release, err)
	if info.HookTyp == loader.HooksFentry || info.HookTyp == loader.HooksLSM {
		t.Fatalf("kernel %s refuses fentry programs, but the loader reports the %s object %s", facts.Release, info.HookTyp, info.Object)
	}
	if info.HookTyp != want {
		t.Fatalf("kernel %s (kprobes %v): loaded %s (%s), want a %s object; refused: %+v",
			facts.Release, facts.Kprobes, info.Object, info.HookTyp, want, info.Refused)
	}
	n := 0
	for _, o := range man.Objects {
		var refusal string
		switch {
		case o.Hooks == loader.HooksFentry:
			refusal = "refused fentry/fexit programs (BPF trampolines) with EPERM"
		case o.Hooks == loader.HooksLSM && kernel.HasLSM(facts.LSMs, "bpf"):
			refusal = "refused BPF-LSM and fentry/fexit programs (BPF trampolines) with EPERM"
		default:
			continue
		}
		n++
		r := reasons[o.Name]
		if !strings.Contains(r, refusal) {
			t.Errorf("%s object %s: refusal %q does not name the kernel's refusal (%q)", o.Hooks, o.Name, r, refusal)
		}
		if strings.Contains(r, "MEMLOCK") {
			t.Errorf("fentry object %s: refusal %q blames MEMLOCK, which the sensor lifted", o.Name, r)
		}
	}
	if n == 0 {
		t.Fatal("no fentry object is embedded")
	}
}

// TestWriteRecord: a write to a watched file comes back through the ring
// buffer with the file's inode and the writer's pid, tid and comm.
func TestWriteRecord(t *testing.T) {
	needSensor(t)
	p, k, id := watchFile(t, t.TempDir(), "passwd")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mark := coll.Mark()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	tid := unix.Gettid()
	if _, err := f.Write([]byte("bob:x:0:0::/home/bob:/bin/sh\n")); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got := coll.WaitN(t, mark, 1, func(e *sensor.Event) bool { return e.File == k })
	e := got[0]
	if e.Op != sensor.OpWrite {
		t.Errorf("op = %v, want write", e.Op)
	}
	if e.WatchID != id || e.Match != sensor.MatchInode {
		t.Errorf("watch id %d match %v, want %d inode", e.WatchID, e.Match, id)
	}
	if e.Proc.PID != uint32(os.Getpid()) || e.Proc.TID != uint32(tid) {
		t.Errorf("pid/tid = %d/%d, want %d/%d", e.Proc.PID, e.Proc.TID, os.Getpid(), tid)
	}
	if e.Proc.PPID != uint32(os.Getppid()) {
		t.Errorf("ppid = %d, want %d", e.Proc.PPID, os.Getppid())
	}
	exe, _ := os.Executable()
	comm := filepath.Base(exe)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	if e.Proc.Comm != comm {
		t.Errorf("comm = %q, want %q", e.Proc.Comm, comm)
	}
	if e.Proc.Exe != exe {
		t.Errorf("exe = %q, want %q", e.Proc.Exe, exe)
	}
	if e.Proc.UID != 0 || e.Proc.EUID != 0 {
		t.Errorf("uid/euid = %d/%d, want 0/0", e.Proc.UID, e.Proc.EUID)
	}
	if e.Path != "passwd" {
		t.Errorf("path = %q, want passwd", e.Path)
	}
}

// TestUnwatchedWritesStayInKernel: writes to files outside the watch set are
// counted by the hook but never reach user space.
func TestUnwatchedWritesStayInKernel(t *testing.T) {
	needSensor(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "other")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		t.Fatal(err)
	}
	before, err := sens.Counters()
	if err != nil {
		t.Fatal(err)
	}
	mark := coll.Mark()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	after, err := sens.Counters()
	if err != nil {
		t.Fatal(err)
	}
	var hits uint64
	for h, v := range after.Hits {
		hits += v - before.Hits[h]
	}
	if hits < n {
		t.Errorf("hooks ran %d times for %d writes", hits, n)
	}
	coll.Quiet(t, mark, 300*time.Millisecond, func(e *sensor.Event) bool { return e.File == k })
}

func TestExeAndCommOfChild(t *testing.T) {
	needSensor(t)
	p, k, _ := watchFile(t, t.TempDir(), "shadow")
	sh, err := exec_lookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	mark := coll.Mark()
	pid := runSh(t, sh, "echo x >> "+p)
	got := coll.WaitN(t, mark, 1, func(e *sensor.Event) bool { return e.File == k })
	e := got[0]
	if e.Proc.PID != uint32(pid) || e.Proc.PPID != uint32(os.Getpid()) {
		t.Errorf("pid/ppid = %d/%d, want %d/%d", e.Proc.PID, e.Proc.PPID, pid, os.Getpid())
	}
	real, _ := filepath.EvalSymlinks(sh)
	if e.Proc.Exe != real {
		t.Errorf("exe = %q, want %q", e.Proc.Exe, real)
	}
	if e.Proc.Comm != filepath.Base(sh) {
		t.Errorf("comm = %q, want %q (the name it was run by)", e.Proc.Comm, filepath.Base(sh))
	}
}

// TestMapThreadRealtime: the sensor's map syscalls run on a SCHED_FIFO
// thread (rtmap.go), which root may always have: without it, a kernel that
// preempts in kernel mode skips kprobe programs while vigil is preempted
// inside a map syscall.
func TestMapThreadRealtime(t *testing.T) {
	needSensor(t)
	if got := sens.Info().MapThread; got != "fifo" {
		t.Fatalf("map thread: %q, want fifo", got)
	}
}
