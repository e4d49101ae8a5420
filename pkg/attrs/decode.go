// Package attrs reads and compares what a file grants beyond its mode and
// owner: POSIX ACLs, file capabilities, inode flags, security labels and
// other extended attributes. The decoders take the kernel's own byte
// formats (the xattr values and the FS_IOC_GETFLAGS word), so the kernel
// hooks can reuse them on the bytes they capture.
package attrs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strings"
)

// Extended attribute names the decoders own.
const (
	XattrACLAccess  = "system.posix_acl_access"
	XattrACLDefault = "system.posix_acl_default"
	XattrCapability = "security.capability"
	XattrSELinux    = "security.selinux"
	// xattrSMACKPrefix covers security.SMACK64, SMACK64EXEC, SMACK64MMAP,
	// SMACK64TRANSMUTE and SMACK64IPIN/IPOUT.
	xattrSMACKPrefix = "security.SMACK64"
)

// ACL tags as the kernel encodes them (include/uapi/linux/posix_acl.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclVersion  = 2
	aclUndefID  = 0xffffffff
)

// Tags of an ACLEntry.
const (
	TagUserObj  = "user_obj"
	TagUser     = "user"
	TagGroupObj = "group_obj"
	TagGroup    = "group"
	TagMask     = "mask"
	TagOther    = "other"
)

var aclTags = map[uint16]string{aclUserObj: TagUserObj, aclUser: TagUser, aclGroupObj: TagGroupObj,
	aclGroup: TagGroup, aclMask: TagMask, aclOther: TagOther}

// ACLEntry is one entry of a POSIX ACL.
type ACLEntry struct {
	Tag string `json:"tag"`
	// ID is the uid (TagUser) or gid (TagGroup); nil for the other tags.
	ID *uint32 `json:"id,omitempty"`
	// Perm is "rwx" with '-' for a missing permission.
	Perm string `json:"perm"`
}

// key identifies the entry's subject (tag and id).
func (e ACLEntry) key() string {
	if e.ID != nil {
		return fmt.Sprintf("%s:%d", e.Tag, *e.ID)
	}
	return e.Tag
}

func permString(p uint16) string {
	b := []byte("---")
	if p&4 != 0 {
		b[0] = 'r'
	}
	if p&2 != 0 {
		b[1] = 'w'
	}
	if p&1 != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// ErrFormat is wrapped by every decoder's error for bytes that are not the
// format they decode.
var ErrFormat = errors.New("malformed attribute")

// DecodeACL decodes a system.posix_acl_access or posix_acl_default value:
// a little-endian version (2) then 8-byte entries {tag u16, perm u16, id u32}.
func DecodeACL(b []byte) ([]ACLEntry, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return nil, fmt.Errorf("acl of %d bytes: %w", len(b), ErrFormat)
	}
	if v := binary.LittleEndian.Uint32(b); v != aclVersion {
		return nil, fmt.Errorf("acl version %d: %w", v, ErrFormat)
	}
	out := make([]ACLEntry, 0, (len(b)-4)/8)
	for off := 4; off < len(b); off += 8 {
		tag := binary.LittleEndian.Uint16(b[off:])
		perm := binary.LittleEndian.Uint16(b[off+2:])
		id := binary.LittleEndian.Uint32(b[off+4:])
		name, ok := aclTags[tag]
		if !ok {
			return nil, fmt.Errorf("acl tag %#x: %w", tag, ErrFormat)
		}
		if perm&^7 != 0 {
			return nil, fmt.Errorf("acl perm %#x: %w", perm, ErrFormat)
		}
		e := ACLEntry{Tag: name, Perm: permString(perm)}
		if tag == aclUser || tag == aclGroup {
			e.ID = &id
		}
		out = append(out, e)
	}
	return out, nil
}

// EncodeACL is DecodeACL's inverse (for tests and for setting an ACL
// without setfacl, in guests that have no such tool).
func EncodeACL(es []ACLEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range es {
		var tag uint16
		for t, n := range aclTags {
			if n == e.Tag {
				tag = t
			}
		}
		var perm uint16
		for i, c := range []byte(e.Perm) {
			if i < 3 && c != '-' {
				perm |= 4 >> i
			}
		}
		id := uint32(aclUndefID)
		if e.ID != nil {
			id = *e.ID
		}
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, perm)
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return b
}

// Capability names by number (include/uapi/linux/capability.h).
var capNames = []string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill",
	"cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
	"cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module",
	"cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot",
	"cap_sys_nice", "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
	"cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
	"cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
}

// rootEquivalent are the capabilities that give a process root's power
// over the system by themselves (docs/events.md says why for each).
var rootEquivalent = map[string]bool{
	"cap_chown": true, "cap_dac_override": true, "cap_dac_read_search": true, "cap_fowner": true,
	"cap_setgid": true, "cap_setuid": true, "cap_setfcap": true, "cap_sys_module": true,
	"cap_sys_rawio": true, "cap_sys_ptrace": true, "cap_sys_admin": true,
}

// CapName names capability n ("cap_43" for one this table does not know).
func CapName(n int) string {
	if n >= 0 && n < len(capNames) {
		return capNames[n]
	}
	return fmt.Sprintf("cap_%d", n)
}

// capList names the bits of m, in number order.
func capList(m uint64) []string {
	var out []string
	for m != 0 {
		n := bits.TrailingZeros64(m)
		out = append(out, CapName(n))
		m &^= 1 << n
	}
	return out
}

// RootEquivalent returns the root-equivalent capabilities among names,
// sorted.
func RootEquivalent(names []string) []string {
	var out []string
	for _, n := range names {
		if rootEquivalent[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// vfs_cap_data (include/uapi/linux/capability.h).
const (
	capRevisionMask  = 0xFF000000
	capFlagEffective = 0x000001
	capRevision1     = 0x01000000
	capRevision2     = 0x02000000
	capRevision3     = 0x03000000
)

// Caps is a decoded security.capability value. The masks are kept for
// comparison; the names are what records show.
type Caps struct {
	// Version is the vfs_cap_data revision, 1 to 3.
	Version int `json:"version"`
	// Permitted and Inheritable are capability bit masks.
	Permitted   uint64 `json:"permitted"`
	Inheritable uint64 `json:"inheritable"`
	// Effective: the permitted set is raised at exec ("+ep").
	Effective bool `json:"effective,omitempty"`
	// RootID is the namespace root uid of a revision 3 value.
	RootID *uint32 `json:"rootid,omitempty"`
}

// PermittedNames and InheritableNames name the masks' capabilities.
func (c *Caps) PermittedNames() []string   { return capList(c.Permitted) }
func (c *Caps) InheritableNames() []string { return capList(c.Inheritable) }

// DecodeCaps decodes a security.capability value: a little-endian
// magic_etc (revision and the effective flag), then 1 (revision 1) or 2
// (revisions 2 and 3) {permitted, inheritable} u32 pairs, then for
// revision 3 the rootid.
func DecodeCaps(b []byte) (*Caps, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("capability of %d bytes: %w", len(b), ErrFormat)
	}
	magic := binary.LittleEndian.Uint32(b)
	c := &Caps{Effective: magic&capFlagEffective != 0}
	if magic&^(capRevisionMask|capFlagEffective) != 0 {
		return nil, fmt.Errorf("capability flags %#x: %w", magic, ErrFormat)
	}
	words, size := 2, 20
	switch magic & capRevisionMask {
	case capRevision1:
		c.Version, words, size = 1, 1, 12
	case capRevision2:
		c.Version = 2
	case capRevision3:
		c.Version, size = 3, 24
	default:
		return nil, fmt.Errorf("capability revision %#x: %w", magic&capRevisionMask, ErrFormat)
	}
	if len(b) != size {
		return nil, fmt.Errorf("capability revision %d of %d bytes, want %d: %w", c.Version, len(b), size, ErrFormat)
	}
	for i := 0; i < words; i++ {
		c.Permitted |= uint64(binary.LittleEndian.Uint32(b[4+8*i:])) << (32 * i)
		c.Inheritable |= uint64(binary.LittleEndian.Uint32(b[8+8*i:])) << (32 * i)
	}
	if c.Version == 3 {
		id := binary.LittleEndian.Uint32(b[20:])
		c.RootID = &id
	}
	return c, nil
}

// EncodeCaps is DecodeCaps' inverse, as revision 2 (or 3 with a RootID).
func EncodeCaps(c *Caps) []byte {
	magic := uint32(capRevision2)
	if c.RootID != nil {
		magic = capRevision3
	}
	if c.Effective {
		magic |= capFlagEffective
	}
	b := binary.LittleEndian.AppendUint32(nil, magic)
	for i := 0; i < 2; i++ {
		b = binary.LittleEndian.AppendUint32(b, uint32(c.Permitted>>(32*i)))
		b = binary.LittleEndian.AppendUint32(b, uint32(c.Inheritable>>(32*i)))
	}
	if c.RootID != nil {
		b = binary.LittleEndian.AppendUint32(b, *c.RootID)
	}
	return b
}

// Inode flags (include/uapi/linux/fs.h), by the names chattr's manual
// uses. Only the ones a user sets with chattr are tracked: the rest
// (extents, htree index, inline data...) are the filesystem's bookkeeping
// and change with the content.
var flagNames = []struct {
	bit  uint32
	name string
}{
	{0x00000001, "secure-deletion"},
	{0x00000002, "undeletable"},
	{0x00000004, "compressed"},
	{0x00000008, "sync"},
	{0x00000010, "immutable"},
	{0x00000020, "append-only"},
	{0x00000040, "no-dump"},
	{0x00000080, "no-atime"},
	{0x00004000, "journal-data"},
	{0x00008000, "no-tail-merge"},
	{0x00010000, "dir-sync"},
	{0x00020000, "top-dir"},
	{0x00800000, "no-cow"},
	{0x02000000, "dax"},
	{0x20000000, "project-inherit"},
	{0x40000000, "casefold"},
}

// TrackedFlags is the mask of the flags kept and compared.
var TrackedFlags = func() uint32 {
	var m uint32
	for _, f := range flagNames {
		m |= f.bit
	}
	return m
}()

// FlagNames names the tracked flags set in f, in bit order.
func FlagNames(f uint32) []string {
	out := []string{}
	for _, n := range flagNames {
		if f&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// DecodeLabel is a security label as text: the value up to a trailing NUL
// (SELinux stores one); bytes that are not printable are escaped.
func DecodeLabel(b []byte) string {
	s := strings.TrimRight(string(b), "\x00")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, s)
}

// IsLabel reports whether an xattr name is a security label shown in clear.
func IsLabel(name string) bool {
	return name == XattrSELinux || strings.HasPrefix(name, xattrSMACKPrefix)
}
