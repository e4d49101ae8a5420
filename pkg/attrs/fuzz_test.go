package attrs

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func seed(f *testing.F, hexes ...string) {
	for _, h := range hexes {
		b, err := hex.DecodeString(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
}

// FuzzDecodeACL: any bytes decode or fail with an error, and what decodes
// re-encodes to the same bytes but for ids of entries that carry none.
func FuzzDecodeACL(f *testing.F) {
	seed(f, realACL, realDefaultACL, "02000000")
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeACL(b)
		if err != nil {
			return
		}
		es2, err := DecodeACL(EncodeACL(es))
		if err != nil || len(es2) != len(es) {
			t.Fatalf("round trip: %v %v", es2, err)
		}
		for i := range es {
			if es[i].key() != es2[i].key() || es[i].Perm != es2[i].Perm {
				t.Fatalf("round trip: %+v != %+v", es[i], es2[i])
			}
		}
		writers(es, 0o777)
	})
}

// FuzzDecodeCaps: any bytes decode or fail; what decodes (revisions 2 and
// 3) re-encodes to the same bytes.
func FuzzDecodeCaps(f *testing.F) {
	seed(f, realCapsEP, realCapsI, capsV3, capsV1)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCaps(b)
		if err != nil {
			return
		}
		if c.Version >= 2 && !bytes.Equal(EncodeCaps(c), b) {
			t.Fatalf("round trip of %x: %x", b, EncodeCaps(c))
		}
		RootEquivalent(append(c.PermittedNames(), c.InheritableNames()...))
	})
}

// FuzzDecodeLabel: a label never holds a control character.
func FuzzDecodeLabel(f *testing.F) {
	f.Add([]byte("system_u:object_r:etc_t:s0\x00"))
	f.Add([]byte("_"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range DecodeLabel(b) {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q", DecodeLabel(b))
			}
		}
	})
}

// FuzzSetAdd: any xattr name and value go into a Set without a panic, and
// a value outside the decoded names never appears in it.
func FuzzSetAdd(f *testing.F) {
	f.Add("user.secret", []byte("hunter2-value"))
	f.Add(XattrACLAccess, []byte{2, 0, 0, 0, 1})
	f.Add(XattrCapability, []byte{1, 0, 0, 2})
	f.Fuzz(func(t *testing.T, name string, val []byte) {
		s := &Set{}
		s.add([]byte("k"), name, val)
		if name == XattrACLAccess || name == XattrACLDefault || name == XattrCapability || IsLabel(name) {
			return
		}
		if len(val) >= 4 {
			for _, v := range s.Xattrs {
				if bytes.Contains([]byte(v), val) {
					t.Fatalf("value %q kept in %v", val, s.Xattrs)
				}
			}
		}
	})
}
