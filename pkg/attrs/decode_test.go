package attrs

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// Values captured from real tools on Debian 12 (little-endian x86-64):
//
//	setfacl -m u:65534:rw,g:27:r f            -> system.posix_acl_access
//	setfacl -d -m u:1000:rwx d                -> system.posix_acl_default
//	setcap cap_setuid,cap_net_raw+ep b        -> security.capability
//	setcap cap_sys_admin+i b                  -> security.capability
const (
	realACL        = "0200000001000600ffffffff02000600feff000004000400ffffffff080004001b00000010000600ffffffff20000400ffffffff"
	realDefaultACL = "0200000001000700ffffffff02000700e803000004000000ffffffff10000700ffffffff20000000ffffffff"
	realCapsEP     = "0100000280200000000000000000000000000000"
	realCapsI      = "0000000200000000000020000000000000000000"
	// Revision 3 (a namespaced file capability, rootid 100000) of
	// cap_chown+ep, and revision 1 of cap_kill+p, built by hand.
	capsV3 = "0100000301000000000000000000000000000000a0860100"
	capsV1 = "000000012000000000000000"
)

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func id(n uint32) *uint32 { return &n }

func TestDecodeACL(t *testing.T) {
	got, err := DecodeACL(unhex(t, realACL))
	if err != nil {
		t.Fatal(err)
	}
	want := []ACLEntry{{Tag: TagUserObj, Perm: "rw-"}, {Tag: TagUser, ID: id(65534), Perm: "rw-"},
		{Tag: TagGroupObj, Perm: "r--"}, {Tag: TagGroup, ID: id(27), Perm: "r--"}, {Tag: TagMask, Perm: "rw-"},
		{Tag: TagOther, Perm: "r--"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if enc := hex.EncodeToString(EncodeACL(got)); enc != realACL {
		t.Fatalf("re-encoded %s, want %s", enc, realACL)
	}
	def, err := DecodeACL(unhex(t, realDefaultACL))
	if err != nil {
		t.Fatal(err)
	}
	if len(def) != 5 || def[1].Tag != TagUser || *def[1].ID != 1000 || def[1].Perm != "rwx" {
		t.Fatalf("default acl %+v", def)
	}
	for _, bad := range []string{"", "02000000ff", "03000000", "0200000040000600ffffffff", "0200000001000800ffffffff"} {
		if _, err := DecodeACL(unhex(t, bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("DecodeACL(%s) = %v, want ErrFormat", bad, err)
		}
	}
}

func TestDecodeCaps(t *testing.T) {
	for _, tc := range []struct {
		hex       string
		version   int
		permitted []string
		inherit   []string
		effective bool
		rootid    *uint32
	}{
		{realCapsEP, 2, []string{"cap_setuid", "cap_net_raw"}, nil, true, nil},
		{realCapsI, 2, nil, []string{"cap_sys_admin"}, false, nil},
		{capsV3, 3, []string{"cap_chown"}, nil, true, id(100000)},
		{capsV1, 1, []string{"cap_kill"}, nil, false, nil},
	} {
		c, err := DecodeCaps(unhex(t, tc.hex))
		if err != nil {
			t.Fatalf("%s: %v", tc.hex, err)
		}
		if c.Version != tc.version || !reflect.DeepEqual(c.PermittedNames(), tc.permitted) ||
			!reflect.DeepEqual(c.InheritableNames(), tc.inherit) || c.Effective != tc.effective || !eqID(c.RootID, tc.rootid) {
			t.Errorf("%s: got %+v permitted %v inheritable %v", tc.hex, c, c.PermittedNames(), c.InheritableNames())
		}
		if tc.version >= 2 {
			if enc := hex.EncodeToString(EncodeCaps(c)); enc != tc.hex {
				t.Errorf("re-encoded %s, want %s", enc, tc.hex)
			}
		}
	}
	for _, bad := range []string{"", "01000002", "0100000480200000000000000000000000000000", "01000003010000000000000000000000000000",
		"0100100280200000000000000000000000000000"} {
		if _, err := DecodeCaps(unhex(t, bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("DecodeCaps(%s) = %v, want ErrFormat", bad, err)
		}
	}
	if got := RootEquivalent([]string{"cap_net_raw", "cap_setuid", "cap_sys_admin"}); !reflect.DeepEqual(got, []string{"cap_setuid", "cap_sys_admin"}) {
		t.Errorf("RootEquivalent = %v", got)
	}
	if CapName(63) != "cap_63" || CapName(21) != "cap_sys_admin" || CapName(40) != "cap_checkpoint_restore" {
		t.Error("capability names")
	}
}

func TestFlagNames(t *testing.T) {
	if got := FlagNames(0x10 | 0x20 | 0x80000); !reflect.DeepEqual(got, []string{"immutable", "append-only"}) {
		t.Fatalf("FlagNames = %v (extents is not tracked)", got)
	}
	if TrackedFlags&0x80000 != 0 || TrackedFlags&0x1000 != 0 {
		t.Fatal("extents and index flags must not be tracked")
	}
}

func TestDecodeLabel(t *testing.T) {
	if got := DecodeLabel([]byte("system_u:object_r:shadow_t:s0\x00")); got != "system_u:object_r:shadow_t:s0" {
		t.Fatal(got)
	}
	if got := DecodeLabel([]byte("a\nb")); got != "a?b" {
		t.Fatal(got)
	}
	if !IsLabel("security.SMACK64EXEC") || !IsLabel("security.selinux") || IsLabel("security.capability") || IsLabel("user.x") {
		t.Fatal("IsLabel")
	}
}

func TestDiff(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	acl, _ := DecodeACL(unhex(t, realACL))
	caps, _ := DecodeCaps(unhex(t, realCapsEP))
	imm := uint32(0x10)
	none := uint32(0)
	old := &Set{Flags: &none, Labels: map[string]string{"security.selinux": "a_t"},
		Xattrs: map[string]string{"user.gone": "1", "user.same": Fingerprint(key, []byte("v"))}}
	cur := &Set{ACL: acl, Caps: caps, Flags: &imm, Labels: map[string]string{"security.selinux": "b_t"},
		Xattrs: map[string]string{"user.same": Fingerprint(key, []byte("w")), "user.new": "2"}}
	c := Diff(old, cur, 0o644, 0o664)
	if c == nil {
		t.Fatal("no changes")
	}
	if !reflect.DeepEqual(c.Fields(), []string{"acl", "capabilities", "flags", "labels", "xattrs"}) {
		t.Errorf("fields %v", c.Fields())
	}
	if len(c.ACL.Added) != 6 || !reflect.DeepEqual(c.ACL.WriteGranted, []string{"user:65534"}) || !c.ACL.Present {
		t.Errorf("acl %+v", c.ACL)
	}
	if !reflect.DeepEqual(c.WriteGrants(id(0), nil), []string{"user:65534"}) || c.WriteGrants(id(65534), id(0)) != nil ||
		c.WriteGrants(nil, id(0)) != nil {
		t.Errorf("write grants %v", c.WriteGrants(id(0), nil))
	}
	if !reflect.DeepEqual(c.Caps.Added, []string{"cap_setuid", "cap_net_raw"}) || !reflect.DeepEqual(c.Caps.RootEquivalent, []string{"cap_setuid"}) || c.Caps.Old != nil {
		t.Errorf("caps %+v", c.Caps)
	}
	if !reflect.DeepEqual(c.Flags.Set, []string{"immutable"}) || len(c.Flags.Cleared) != 0 {
		t.Errorf("flags %+v", c.Flags)
	}
	if !reflect.DeepEqual(c.Labels, []LabelChange{{"security.selinux", "a_t", "b_t"}}) {
		t.Errorf("labels %+v", c.Labels)
	}
	if !reflect.DeepEqual(c.Xattrs, &XattrChange{Added: []string{"user.new"}, Removed: []string{"user.gone"}, Changed: []string{"user.same"}}) {
		t.Errorf("xattrs %+v", c.Xattrs)
	}

	// A mask without w takes a named user's write away; changing an
	// entry's permission is listed as changed.
	masked := append([]ACLEntry(nil), acl...)
	masked[4] = ACLEntry{Tag: TagMask, Perm: "r--"}
	if w := writers(masked, 0o644); len(w) != 0 {
		t.Errorf("writers under an r-- mask: %v", w)
	}
	c = Diff(&Set{ACL: masked}, &Set{ACL: acl}, 0o644, 0o664)
	if len(c.ACL.Changed) != 1 || c.ACL.Changed[0].Old != "r--" || !reflect.DeepEqual(c.ACL.WriteGranted, []string{"user:65534"}) {
		t.Errorf("mask change %+v", c.ACL)
	}
	// Removing the ACL altogether; nothing granted.
	c = Diff(&Set{ACL: acl}, &Set{}, 0o664, 0o644)
	if c.ACL.Present || len(c.ACL.Removed) != 6 || len(c.ACL.WriteGranted) != 0 {
		t.Errorf("acl removed %+v", c.ACL)
	}
	// Unchanged, never recorded, and flags one side lacks: nothing.
	if Diff(cur, cur, 0o644, 0o644) != nil || Diff(nil, cur, 0, 0) != nil || Diff(&Set{}, &Set{Flags: &imm}, 0, 0) != nil {
		t.Error("spurious changes")
	}
}
