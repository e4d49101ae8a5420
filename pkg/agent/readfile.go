package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/consumer"
)

// maxRead bounds what a consumer is given of one file; the hash covers the
// whole file whatever its size. A larger file is not parsed at all (a
// consumer given its first maxRead bytes would diff a truncated file as if
// it were the whole): the record says so (oversizeProblem).
const maxRead = 16 << 20

// observed is one read of a watched file.
type observed struct {
	in  consumer.Input
	sum string // sha256 of the whole file; "" unless a regular file was read
	st  *syscall.Stat_t
	// oversize is set for a regular file larger than maxRead: hashed,
	// not parsed (in.Content is nil).
	oversize bool
	// symlink is set when the path is now a symbolic link: it is observed
	// as itself (attributes only), never followed.
	symlink bool
}

// readFile reads a watched file for its consumer: content (up to maxRead),
// its stat, and the sha256 of all of it, read in a stream. A file that is
// not there gives a nil content and info, and a nil stat. It follows no
// symlink in any component of the path (the watch set holds real paths),
// so a watched file replaced by a link to another file (/etc/shadow) is
// never read as if it were the watched file; it never blocks on a FIFO and
// never takes a terminal as its controlling one.
func readFile(path string) observed {
	o := observed{in: consumer.Input{Path: path}}
	var lst syscall.Stat_t
	if err := syscall.Lstat(path, &lst); err == nil {
		switch lst.Mode & syscall.S_IFMT {
		case syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFIFO, syscall.S_IFSOCK:
			// A device node, FIFO or socket: described, never opened (an
			// open can have effects: a tape rewinds, a modem hangs up).
			o.st, o.in.Info = &lst, fileInfo(&lst)
			return o
		}
	}
	fd, err := openNoFollow(path)
	if errors.Is(err, unix.ELOOP) {
		// A symlink somewhere in the path: describe the final component
		// without following it, read nothing.
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err == nil {
			o.st, o.in.Info, o.symlink = &st, fileInfo(&st), true
		}
		return o
	}
	if err != nil {
		return o
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return o
	}
	o.in.Info = fileInfo(&st)
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		o.st = &st
		return o // a FIFO, device or directory: attributes only
	}
	h := sha256.New()
	var buf []byte
	if st.Size <= maxRead {
		buf, err = io.ReadAll(io.TeeReader(io.LimitReader(f, maxRead+1), h))
		if err != nil {
			return observed{in: consumer.Input{Path: path}}
		}
	}
	if st.Size > maxRead || len(buf) > maxRead {
		// Too large to parse (or it grew past the limit while read):
		// hash the rest in a stream, keep none of it.
		buf = nil
		o.oversize = true
	}
	if _, err := io.Copy(h, f); err != nil {
		return observed{in: consumer.Input{Path: path}}
	}
	if buf == nil && !o.oversize {
		buf = []byte{}
	}
	o.in.Content, o.st, o.sum = buf, &st, hex.EncodeToString(h.Sum(nil))
	return o
}

func fileInfo(st *syscall.Stat_t) *consumer.FileInfo {
	return &consumer.FileInfo{Size: st.Size, Mode: st.Mode, UID: st.Uid, GID: st.Gid,
		MtimeNS: st.Mtim.Nano(), CtimeNS: st.Ctim.Nano()}
}

const readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// openNoFollow opens path refusing symlinks in every component
// (openat2 RESOLVE_NO_SYMLINKS, Linux 5.6+); where openat2 is missing, only
// the final component is refused (O_NOFOLLOW).
func openNoFollow(path string) (int, error) {
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: readFlags, Resolve: unix.RESOLVE_NO_SYMLINKS})
		// ENOSYS: before 5.6; EPERM: a seccomp filter that does not know it.
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			fd, err = unix.Open(path, readFlags, 0)
		}
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}
