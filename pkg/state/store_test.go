package state

import (
	"github.com/vigil-fim/vigil/pkg/attrs"

	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	p := filepath.Join(dir, StoreFile)
	s := openT(t, p)
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {p, 0o600}} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.want {
			t.Errorf("%s: mode %04o, want %04o", c.path, st.Mode().Perm(), c.want)
		}
	}
	if s.Path() != p {
		t.Errorf("Path() = %q", s.Path())
	}
	if v, err := s.Meta("schema"); err != nil || string(v) != "3" {
		t.Errorf("schema = %q, %v", v, err)
	}
}

func TestCRUD(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), StoreFile))
	if n, err := s.Len(); err != nil || n != 0 {
		t.Fatalf("Len = %d, %v", n, err)
	}
	e := Entry{Path: "/etc/passwd", Kind: "passwd", Dev: 2049, Ino: 77, Size: 1234, Mode: 0o100644,
		UID: 0, GID: 0, MtimeNS: 1700000000123456789, CtimeNS: 1700000000987654321,
		SHA256: strings.Repeat("ab", 32), State: json.RawMessage(`{"v":1,"kind":"passwd"}`), UpdatedNS: 42}
	if err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get("/etc/passwd")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("Get = %+v\nwant %+v", got, e)
	}
	if _, ok, err := s.Get("/nope"); ok || err != nil {
		t.Errorf("Get(/nope) = %v, %v", ok, err)
	}
	if err := s.Put(Entry{Kind: "hash"}); err == nil {
		t.Error("Put without a path succeeded")
	}
	// PutMany: out of order, with a duplicate (the last one wins).
	batch := []Entry{
		{Path: "/z", Kind: "hash", Absent: true},
		{Path: "/a", Kind: "hash", Size: 1},
		{Path: "/m", Kind: "hash"},
		{Path: "/a", Kind: "hash", Size: 2},
	}
	if err := s.PutMany(batch); err != nil {
		t.Fatal(err)
	}
	paths, err := s.Paths()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a", "/etc/passwd", "/m", "/z"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("Paths = %v, want %v", paths, want)
	}
	if a, _, _ := s.Get("/a"); a.Size != 2 {
		t.Errorf("duplicate in PutMany: size %d, want the last (2)", a.Size)
	}
	if z, _, _ := s.Get("/z"); !z.Absent {
		t.Error("Absent lost")
	}
	many, err := s.GetMany([]string{"/a", "/nope", "/z"})
	if err != nil || len(many) != 2 || many["/z"].Path != "/z" {
		t.Errorf("GetMany = %v, %v", many, err)
	}
	var seen []string
	if err := s.ForEach(func(e Entry) error { seen = append(seen, e.Path); return nil }); err != nil || !reflect.DeepEqual(seen, paths) {
		t.Errorf("ForEach saw %v, %v", seen, err)
	}
	if err := s.Delete("/m"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get("/m"); ok {
		t.Error("Delete left the record")
	}
	removed, err := s.Prune(func(p string) bool { return p == "/etc/passwd" })
	if err != nil || removed != 2 {
		t.Errorf("Prune = %d, %v; want 2", removed, err)
	}
	if n, _ := s.Len(); n != 1 {
		t.Errorf("Len after Prune = %d, want 1", n)
	}
	if err := s.SetMeta("schema", []byte("9")); err == nil {
		t.Error("SetMeta(schema) allowed")
	}
	if err := s.SetMeta("baseline_ns", []byte("5")); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Meta("baseline_ns"); string(v) != "5" {
		t.Errorf("Meta = %q", v)
	}
	if err := s.DeleteMeta("baseline_ns"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Meta("baseline_ns"); v != nil || err != nil {
		t.Errorf("Meta after DeleteMeta = %q, %v", v, err)
	}
	if err := s.DeleteMeta("schema"); err == nil {
		t.Error("DeleteMeta(schema) allowed")
	}
}

func TestPruneMany(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), StoreFile))
	var es []Entry
	for i := 0; i < 5000; i++ {
		es = append(es, Entry{Path: "/d/" + strings.Repeat("x", i%7) + time.Duration(i).String(), Kind: "hash"})
	}
	if err := s.PutMany(es); err != nil {
		t.Fatal(err)
	}
	n0, _ := s.Len()
	removed, err := s.Prune(func(p string) bool { return len(p)%2 == 0 })
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := s.Paths()
	for _, p := range paths {
		if len(p)%2 != 0 {
			t.Fatalf("Prune kept %q", p)
		}
	}
	if removed+len(paths) != n0 || removed == 0 {
		t.Errorf("removed %d + kept %d != %d", removed, len(paths), n0)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), StoreFile)
	openT(t, p)
	start := time.Now()
	s2, err := Open(p, Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v is not ErrLocked", err)
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "another vigil") {
		t.Errorf("error %q does not name the file and the other vigil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s to fail", d)
	}
	// A read-only open is refused too while the writer holds it.
	if s3, err := Open(p, Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond}); err == nil {
		s3.Close()
		t.Error("read-only Open succeeded while a writer holds the store")
	}
}

func TestReadOnly(t *testing.T) {
	p := filepath.Join(t.TempDir(), StoreFile)
	if _, err := Open(p, Options{ReadOnly: true}); err == nil {
		t.Error("read-only Open of a missing store succeeded")
	}
	s := openT(t, p)
	if err := s.Put(Entry{Path: "/x", Kind: "hash", Size: 3}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r, err := Open(p, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, ok, err := r.Get("/x"); !ok || err != nil || e.Size != 3 {
		t.Errorf("Get = %+v %v %v", e, ok, err)
	}
	if err := r.Put(Entry{Path: "/y", Kind: "hash"}); err == nil {
		t.Error("Put on a read-only store succeeded")
	}
}

func TestRefusesInsecurePermissions(t *testing.T) {
	for _, c := range []struct {
		name    string
		dirMode os.FileMode
		mode    os.FileMode
		ok      bool
	}{
		{"private", 0o700, 0o600, true},
		{"group-readable file", 0o750, 0o640, true},
		{"world-readable file", 0o755, 0o644, false},
		{"group-writable file", 0o700, 0o620, false},
		{"world-writable file", 0o700, 0o602, false},
		{"group-writable dir", 0o770, 0o600, false},
		{"world-writable dir", 0o777, 0o600, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s")
			p := filepath.Join(dir, StoreFile)
			s, err := Open(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.dirMode); err != nil {
				t.Fatal(err)
			}
			s, err = Open(p, Options{})
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInsecure) {
				t.Errorf("error %v is not ErrInsecure", err)
			}
		})
	}
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "real.db")
		openT(t, real).Close()
		link := filepath.Join(dir, StoreFile)
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(link, Options{}); err == nil {
			s.Close()
			t.Fatal("a symlinked store was accepted")
		}
	})
	t.Run("other owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to chown")
		}
		p := filepath.Join(t.TempDir(), StoreFile)
		openT(t, p).Close()
		if err := os.Chown(p, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(p, Options{}); err == nil {
			s.Close()
			t.Fatal("a store owned by another user was accepted")
		}
	})
}

func TestSchemaVersion(t *testing.T) {
	for _, c := range []struct {
		version string
		ok      bool
	}{{"1", true}, {"2", true}, {"3", true}, {"4", false}, {"0", false}, {"x", false}} {
		p := filepath.Join(t.TempDir(), StoreFile)
		openT(t, p).Close()
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, []byte(c.version))
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := Open(p, Options{})
		if c.ok != (err == nil) {
			t.Errorf("schema %q: Open error %v, want ok=%v", c.version, err, c.ok)
		}
		if err == nil {
			s.Close()
		} else if !errors.Is(err, ErrSchema) {
			t.Errorf("schema %q: error %v is not ErrSchema", c.version, err)
		}
	}
}

// TestSchemaUpgrade: a version 1 store (records without attrs) opens; a
// read-only open leaves it at 1 (Schema says 1), a writable one marks it 3
// and sets MetaUpgradeEntries to the version it came from; its records
// read back with no Attrs (never recorded), and new records keep theirs
// (and a symlink's target, a device's number). A current store is not
// marked.
func TestSchemaUpgrade(t *testing.T) {
	p := filepath.Join(t.TempDir(), StoreFile)
	openT(t, p).Close()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketFiles).Put([]byte("/etc/old"), []byte(`{"kind":"hash","size":3,"mode":33188}`)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, err := Open(p, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ro.Meta("schema"); string(v) != "1" || ro.Schema() != 1 {
		t.Errorf("read-only open changed the schema to %q (Schema %d)", v, ro.Schema())
	}
	if v, _ := ro.Meta(MetaUpgradeEntries); v != nil {
		t.Errorf("read-only open marked the upgrade: %q", v)
	}
	ro.Close()
	s := openT(t, p)
	if v, _ := s.Meta("schema"); string(v) != "3" || s.Schema() != 1 {
		t.Errorf("schema after a writable open = %q (Schema %d), want 3 (1)", v, s.Schema())
	}
	if v, _ := s.Meta(MetaUpgradeEntries); string(v) != "1" {
		t.Errorf("upgrade mark %q, want 1", v)
	}
	if err := s.Put(Entry{Path: "/etc/link", Kind: "hash", Mode: 0o120777, Target: "../x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Entry{Path: "/etc/null", Kind: "hash", Mode: 0o20666, Rdev: 0x103}); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := s.Get("/etc/link"); l.Target != "../x" {
		t.Errorf("symlink record %+v", l)
	}
	if d, _, _ := s.Get("/etc/null"); d.Rdev != 0x103 {
		t.Errorf("device record %+v", d)
	}
	if err := s.DeleteMeta(MetaUpgradeEntries); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, p)
	if v, _ := s.Meta(MetaUpgradeEntries); v != nil || s.Schema() != 3 {
		t.Errorf("a current store was marked again: %q (Schema %d)", v, s.Schema())
	}
	e, ok, err := s.Get("/etc/old")
	if err != nil || !ok || e.Attrs != nil || e.Size != 3 {
		t.Fatalf("version 1 record: %+v %v %v", e, ok, err)
	}
	flags := uint32(0x10)
	if err := s.Put(Entry{Path: "/etc/new", Kind: "hash", Attrs: &attrs.Set{Flags: &flags}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Entry{Path: "/etc/none", Kind: "hash", Attrs: &attrs.Set{}}); err != nil {
		t.Fatal(err)
	}
	e, _, _ = s.Get("/etc/new")
	n, _, _ := s.Get("/etc/none")
	if e.Attrs == nil || e.Attrs.Flags == nil || *e.Attrs.Flags != 0x10 || n.Attrs == nil {
		t.Fatalf("attrs not kept: %+v, empty set read back as %+v", e.Attrs, n.Attrs)
	}
}

func TestCorruptRecordIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), StoreFile)
	openT(t, p).Close()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).Put([]byte("/bad"), []byte(`{"kind":"hash","size":`))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := openT(t, p)
	if _, _, err := s.Get("/bad"); err == nil || !strings.Contains(err.Error(), "/bad") {
		t.Errorf("Get of a torn record: %v", err)
	}
}
