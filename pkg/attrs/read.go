package attrs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Set is what a file grants beyond its mode and owner, as recorded in the
// baseline store. It never holds an xattr value that may be a secret: the
// values of other xattrs are keyed fingerprints.
type Set struct {
	// ACL and DefaultACL are the access and default POSIX ACLs (nil: none).
	ACL        []ACLEntry `json:"acl,omitempty"`
	DefaultACL []ACLEntry `json:"default_acl,omitempty"`
	// Caps is the file capability (nil: none).
	Caps *Caps `json:"caps,omitempty"`
	// Flags are the tracked inode flags (TrackedFlags); nil where the
	// filesystem has none (tmpfs before 6.0, proc...) or the file is not a
	// regular file or directory.
	Flags *uint32 `json:"flags,omitempty"`
	// Labels are security labels by xattr name (security.selinux,
	// security.SMACK64*), as text.
	Labels map[string]string `json:"labels,omitempty"`
	// Xattrs are the other extended attributes: name -> keyed fingerprint
	// of the value (hex HMAC-SHA256 with the host key, 16 digits); "" when
	// no key was given (presence only).
	Xattrs map[string]string `json:"xattrs,omitempty"`
	// Errors are values that could not be decoded, by xattr name: the
	// value is then kept as a fingerprint in Xattrs instead.
	Errors map[string]string `json:"errors,omitempty"`
}

// Empty reports whether the set holds nothing.
func (s *Set) Empty() bool {
	return s == nil || (s.ACL == nil && s.DefaultACL == nil && s.Caps == nil && s.Flags == nil &&
		len(s.Labels) == 0 && len(s.Xattrs) == 0 && len(s.Errors) == 0)
}

// Fingerprint is hex(HMAC-SHA256(key, value))[:16], the store's keyed
// fingerprint; "" without a key.
func Fingerprint(key, value []byte) string {
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// add decodes one xattr into the set.
func (s *Set) add(key []byte, name string, val []byte) {
	bad := func(err error) {
		if s.Errors == nil {
			s.Errors = map[string]string{}
		}
		s.Errors[name] = err.Error()
		s.other(key, name, val)
	}
	switch {
	case name == XattrACLAccess || name == XattrACLDefault:
		es, err := DecodeACL(val)
		if err != nil {
			bad(err)
			return
		}
		if es == nil {
			es = []ACLEntry{}
		}
		if name == XattrACLAccess {
			s.ACL = es
		} else {
			s.DefaultACL = es
		}
	case name == XattrCapability:
		c, err := DecodeCaps(val)
		if err != nil {
			bad(err)
			return
		}
		s.Caps = c
	case IsLabel(name):
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[name] = DecodeLabel(val)
	default:
		s.other(key, name, val)
	}
}

func (s *Set) other(key []byte, name string, val []byte) {
	if s.Xattrs == nil {
		s.Xattrs = map[string]string{}
	}
	s.Xattrs[name] = Fingerprint(key, val)
}

// xattrOps are the *xattr calls on a path (not followed) or a descriptor.
type xattrOps struct {
	list func([]byte) (int, error)
	get  func(string, []byte) (int, error)
}

// ReadFd reads the attributes of an open file: its xattrs and, for a
// regular file or directory (isFileOrDir), its inode flags.
func ReadFd(fd int, isFileOrDir bool, key []byte) (*Set, error) {
	s, err := read(xattrOps{
		list: func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		get:  func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) },
	}, key)
	if err != nil {
		return nil, err
	}
	if isFileOrDir {
		f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		switch {
		case err == nil:
			f &= TrackedFlags
			s.Flags = &f
		case errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL),
			errors.Is(err, unix.ENOSYS):
			// the filesystem has no inode flags
		default:
			return nil, fmt.Errorf("inode flags: %w", err)
		}
	}
	return s, nil
}

// ReadPath reads the xattrs of path without following a final symlink (a
// symlink's own, which few filesystems allow). It reads no inode flags:
// that needs an open file (ReadFd).
func ReadPath(path string, key []byte) (*Set, error) {
	return read(xattrOps{
		list: func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		get:  func(n string, b []byte) (int, error) { return unix.Lgetxattr(path, n, b) },
	}, key)
}

func read(ops xattrOps, key []byte) (*Set, error) {
	s := &Set{}
	names, err := listAll(ops.list)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return s, nil
		}
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	for _, n := range names {
		v, err := getAll(ops.get, n)
		if errors.Is(err, unix.ENODATA) {
			continue // removed between list and get
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", n, err)
		}
		s.add(key, n, v)
	}
	return s, nil
}

// listAll lists xattr names, growing the buffer while the list grows.
func listAll(list func([]byte) (int, error)) ([]string, error) {
	for try := 0; try < 8; try++ {
		n, err := list(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var out []string
		for _, p := range strings.Split(string(buf[:n]), "\x00") {
			if p != "" {
				out = append(out, p)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	return nil, errors.New("xattr list keeps growing")
}

func getAll(get func(string, []byte) (int, error), name string) ([]byte, error) {
	for try := 0; try < 8; try++ {
		n, err := get(name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		if n == 0 {
			return buf, nil
		}
		n, err = get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, errors.New("xattr value keeps growing")
}
