package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/attrs"
)

// MaxContent bounds what a consumer is given of one file (as the agent
// does); the SHA-256 covers the whole file whatever its size. A larger file
// is not parsed at all: its finding carries a problem that says so.
const MaxContent = 16 << 20

// keepBuf is the largest read buffer a worker keeps between files.
const keepBuf = 1 << 20

// observation is one read of a target.
type observation struct {
	absent  bool
	regular bool
	st      unix.Stat_t
	content []byte // regular files: up to MaxContent bytes, valid until the next read
	sha256  string // regular files: of the whole content
	// oversize is set for a regular file larger than MaxContent: content
	// holds only its first MaxContent bytes, and must not be parsed as if
	// it were the file.
	oversize bool
	// target is a symlink's target (readlink).
	target string
	// attrs are the file's ACLs, capability, flags, labels and xattrs.
	attrs *attrs.Set
}

// reader reads files for one worker, reusing its buffers.
type reader struct {
	buf     []byte
	scratch []byte
	h       hash.Hash
	key     []byte // the host key, for xattr value fingerprints
}

func newReader(key []byte) *reader { return &reader{h: sha256.New(), key: key} }

const openFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// readTries bounds how often read looks again at a path whose file changed
// type or inode between lstat and open.
const readTries = 3

// read observes path without ever following a final symlink or opening
// anything but a regular file or a directory: it lstats the path first. A
// symlink is its target (readlink) and its own xattrs; a FIFO, socket or
// device node is its stat and xattrs (opening a device can have effects,
// and a FIFO or socket holds nothing to compare). A regular file is read
// once for both its content and its hash, a directory for its inode flags,
// leaving the access time alone when allowed to (O_NOATIME). A path that
// does not exist is absent; other failures are errors.
func (r *reader) read(path string, o *observation) error {
	for try := 1; ; try++ {
		err := r.readOnce(path, o)
		if err != errRaced {
			return err
		}
		if try == readTries {
			return fmt.Errorf("%s: changed %d times while being read", path, readTries)
		}
	}
}

// errRaced: the path named another file at open than at lstat.
var errRaced = errors.New("raced")

func (r *reader) readOnce(path string, o *observation) error {
	*o = observation{}
	if err := unix.Lstat(path, &o.st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			o.absent = true
			return nil
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	var err error
	switch o.st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
	case unix.S_IFLNK:
		if o.target, err = readlink(path, int(o.st.Size)); err != nil {
			if err == unix.ENOENT || err == unix.EINVAL {
				return errRaced // gone, or no longer a symlink
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		fallthrough
	default:
		if o.attrs, err = attrs.ReadPath(path, r.key); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return errRaced
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	lst := o.st
	fd, err := openNoEINTR(path, openFlags|unix.O_NOATIME)
	if err == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
		fd, err = openNoEINTR(path, openFlags)
	}
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP || err == unix.ENXIO:
		return errRaced // gone, or now a symlink or a socket
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &o.st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if o.st.Dev != lst.Dev || o.st.Ino != lst.Ino || o.st.Mode&unix.S_IFMT != lst.Mode&unix.S_IFMT {
		return errRaced
	}
	typ := o.st.Mode & unix.S_IFMT
	if o.attrs, err = attrs.ReadFd(fd, typ == unix.S_IFREG || typ == unix.S_IFDIR, r.key); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if typ != unix.S_IFREG {
		return nil
	}
	o.regular = true
	// Size the buffer from fstat, one byte more to see a file that grew.
	want := int(min(max(o.st.Size+1, 512), MaxContent))
	if cap(r.buf) < want {
		r.buf = make([]byte, 0, want)
	}
	b := r.buf[:0]
	r.h.Reset()
	for {
		if len(b) == cap(b) {
			if len(b) >= MaxContent {
				break
			}
			nb := make([]byte, len(b), min(2*cap(b), MaxContent))
			copy(nb, b)
			b = nb
		}
		req := cap(b) - len(b)
		n, err := readNoEINTR(fd, b[len(b):cap(b)])
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
		if n < req && int64(len(b)) == o.st.Size {
			break // a short read that ends at st_size: EOF, without one more read
		}
	}
	r.h.Write(b)
	if len(b) >= MaxContent { // the rest is hashed, not kept
		if r.scratch == nil {
			r.scratch = make([]byte, 256<<10)
		}
		for {
			n, err := readNoEINTR(fd, r.scratch)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if n == 0 {
				break
			}
			o.oversize = true
			r.h.Write(r.scratch[:n])
		}
	}
	var sum [sha256.Size]byte
	o.sha256 = hex.EncodeToString(r.h.Sum(sum[:0]))
	o.content = b
	if cap(b) <= keepBuf {
		r.buf = b[:0]
	} else {
		r.buf = nil // do not keep a large buffer per worker
	}
	return nil
}

// readlink is a symlink's target; size is its st_size (a hint: a target
// that grew since is read again with a larger buffer).
func readlink(path string, size int) (string, error) {
	n := max(size+1, 128)
	for {
		b := make([]byte, n)
		m, err := unix.Readlink(path, b)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(b[:m]), nil
		}
		n *= 2
	}
}

func openNoEINTR(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

func readNoEINTR(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
