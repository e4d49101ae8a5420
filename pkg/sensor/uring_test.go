//go:build privileged

package sensor_test

import (
	"bytes"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// A minimal io_uring: one ring, one request at a time.

const (
	ioringOffSQRing = 0
	ioringOffCQRing = 0x8000000
	ioringOffSQEs   = 0x10000000

	ioringOpWritev = 2
	ioringOpWrite  = 23 // 5.6+

	ioringEnterGetevents = 1
)

type uringSQOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type uringCQOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type uringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  uringSQOffsets
	CQOff                                                                  uringCQOffsets
}

type uringSQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	RWFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Pad         [2]uint64
}

type uringCQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

func init() {
	if unsafe.Sizeof(uringParams{}) != 120 || unsafe.Sizeof(uringSQE{}) != 64 || unsafe.Sizeof(uringCQE{}) != 16 {
		panic("io_uring struct layout")
	}
}

type uring struct {
	fd         int
	p          uringParams
	sq, cq, se []byte
}

func newURing(t *testing.T) *uring {
	t.Helper()
	r := &uring{}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&r.p)), 0)
	if errno != 0 {
		v, _ := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
		t.Fatalf("io_uring_setup: %v (errno %d; kernel.io_uring_disabled=%q)", errno, int(errno), bytes.TrimSpace(v))
	}
	r.fd = int(fd)
	t.Cleanup(func() { r.close() })
	var err error
	mm := func(off int64, size uint32) []byte {
		if err != nil {
			return nil
		}
		var b []byte
		b, err = unix.Mmap(r.fd, off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		return b
	}
	r.sq = mm(ioringOffSQRing, r.p.SQOff.Array+r.p.SQEntries*4)
	r.cq = mm(ioringOffCQRing, r.p.CQOff.Cqes+r.p.CQEntries*uint32(unsafe.Sizeof(uringCQE{})))
	r.se = mm(ioringOffSQEs, r.p.SQEntries*uint32(unsafe.Sizeof(uringSQE{})))
	if err != nil {
		t.Fatalf("mapping the io_uring rings: %v", err)
	}
	return r
}

func (r *uring) close() {
	for _, b := range [][]byte{r.sq, r.cq, r.se} {
		if b != nil {
			unix.Munmap(b)
		}
	}
	r.sq, r.cq, r.se = nil, nil, nil
	if r.fd > 0 {
		unix.Close(r.fd)
		r.fd = 0
	}
}

func u32(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// do submits one request and waits for its completion; it returns the
// completion's result (a byte count or a negative errno).
func (r *uring) do(t *testing.T, sqe uringSQE) int32 {
	t.Helper()
	tail := atomic.LoadUint32(u32(r.sq, r.p.SQOff.Tail))
	mask := *u32(r.sq, r.p.SQOff.RingMask)
	idx := tail & mask
	*(*uringSQE)(unsafe.Pointer(&r.se[uintptr(idx)*unsafe.Sizeof(sqe)])) = sqe
	*u32(r.sq, r.p.SQOff.Array+idx*4) = idx
	atomic.StoreUint32(u32(r.sq, r.p.SQOff.Tail), tail+1)

	submit := uintptr(1)
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), submit, 1, ioringEnterGetevents, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			t.Fatalf("io_uring_enter: %v", errno)
		}
		if submit == 1 && n != 1 {
			t.Fatalf("io_uring_enter submitted %d requests, want 1", n)
		}
		submit = 0
		head := atomic.LoadUint32(u32(r.cq, r.p.CQOff.Head))
		if head == atomic.LoadUint32(u32(r.cq, r.p.CQOff.Tail)) {
			continue
		}
		cmask := *u32(r.cq, r.p.CQOff.RingMask)
		cqe := *(*uringCQE)(unsafe.Pointer(&r.cq[uintptr(r.p.CQOff.Cqes)+uintptr(head&cmask)*unsafe.Sizeof(uringCQE{})]))
		atomic.StoreUint32(u32(r.cq, r.p.CQOff.Head), head+1)
		if cqe.UserData != sqe.UserData {
			t.Fatalf("completion for request %d, want %d", cqe.UserData, sqe.UserData)
		}
		return cqe.Res
	}
}

// write writes buf to fd at off with IORING_OP_WRITE, or IORING_OP_WRITEV
// where WRITE is not known.
func (r *uring) write(t *testing.T, fd int, buf []byte, off uint64) int32 {
	t.Helper()
	res := r.do(t, uringSQE{Opcode: ioringOpWrite, Fd: int32(fd), Off: off,
		Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), Len: uint32(len(buf)), UserData: 1})
	runtime.KeepAlive(buf)
	if res != -int32(unix.EINVAL) {
		return res
	}
	t.Logf("IORING_OP_WRITE refused (EINVAL): trying IORING_OP_WRITEV")
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	res = r.do(t, uringSQE{Opcode: ioringOpWritev, Fd: int32(fd), Off: off,
		Addr: uint64(uintptr(unsafe.Pointer(&iov))), Len: 1, UserData: 2})
	runtime.KeepAlive(&iov)
	runtime.KeepAlive(buf)
	return res
}

// TestIOURingWrite: a write submitted through io_uring. The kprobe objects
// see it (io_write, or the VFS write hooks where the kernel routes it so),
// attributed to this process; the tracepoint object cannot (a documented
// gap: the write happens without a write syscall), and must then report
// nothing rather than something wrong.
func TestIOURingWrite(t *testing.T) {
	needSensor(t)
	fen := newFence(t)
	for _, fs := range []struct {
		name string
		base func(*testing.T) string
	}{{"tmpfs", tmpfsBase}, {"disk", diskBase}} {
		t.Run(fs.name, func(t *testing.T) {
			dir := fs.base(t)
			p, k, id := watchIn(t, sens, dir, "passwd")
			before, err := os.ReadFile(p)
			must(t, "read", err)
			ring := newURing(t)
			fd := openFd(t, p, unix.O_WRONLY)
			data := []byte("bob:x:0:0::/home/bob:/bin/sh\n")

			mark := coll.Mark()
			if res := ring.write(t, fd, data, uint64(len(before))); res != int32(len(data)) {
				t.Fatalf("io_uring write: res %d, want %d", res, len(data))
			}
			after, err := os.ReadFile(p)
			must(t, "read back", err)
			if want := append(before, data...); !bytes.Equal(after, want) {
				t.Fatalf("file after the io_uring write = %q, want %q", after, want)
			}
			forFile := func(e *sensor.Event) bool { return e.File == k }

			if sens.Info().HookTyp == loader.HooksTracepoint {
				// The documented gap: nothing may arrive.
				fen.wait(t)
				for _, e := range coll.Since(mark, forFile) {
					t.Errorf("tracepoint object: unexpected record for an io_uring write: %s", describe(e))
				}
				return
			}
			hooks := []string{"io_write", "vfs_write", "vfs_iter_write"}
			pid := uint32(os.Getpid())
			coll.WaitN(t, mark, 1, func(e *sensor.Event) bool {
				return e.File == k && e.Op == sensor.OpWrite && e.Proc.PID == pid
			})
			fen.wait(t)
			for _, e := range coll.Since(mark, forFile) {
				if e.Op != sensor.OpWrite || !slices.Contains(hooks, e.Hook.String()) ||
					e.Match != sensor.MatchInode || e.WatchID != id || e.Proc.PID != pid || e.Path != "passwd" {
					t.Errorf("record %s (exe %q ppid %d), want a write of %v by pid %d from one of %v",
						describe(e), e.Proc.Exe, e.Proc.PPID, k, pid, hooks)
				} else {
					t.Logf("record %s", describe(e))
				}
			}
		})
	}
}
