package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-fim/vigil/pkg/attrs"
)

// StoreFile is the baseline store's name in the state directory.
const StoreFile = "state.db"

// SchemaVersion is the layout of the store this package writes. A store
// written by a newer vigil (a higher version) is refused rather than
// misread. Version 2 added Entry.Attrs: a version 1 store opens, its
// records have no Attrs (never recorded, so nothing is compared), the next
// comparison records them quietly, and a writable open marks it version 2.
// Version 3 records every entry of a watched tree, not only its regular
// files (directories, symlinks with Entry.Target, FIFOs, sockets, device
// nodes with Entry.Rdev), and the mounts the watched paths are seen
// through (meta "mounts", written by pkg/scan): a writable open of an
// older store marks it version 3 and sets MetaUpgradeEntries, so that the
// next comparison records the entries an older vigil never kept quietly
// instead of reporting each one created.
const SchemaVersion = 3

// MetaUpgradeEntries is set (to the version upgraded from) when an older
// store is upgraded to version 3, and removed by the first complete
// comparison that records what that version did not keep (pkg/scan).
const MetaUpgradeEntries = "upgrade_entries"

// DefaultLockTimeout is how long Open waits for another process's lock.
const DefaultLockTimeout = time.Second

var (
	// ErrLocked is returned (wrapped, with the file's name) by Open when
	// another process, normally another vigil, has the store open.
	ErrLocked = errors.New("locked: another vigil holds it")
	// ErrSchema is returned (wrapped) by Open for a store of an unknown
	// (newer) or invalid schema version.
	ErrSchema = errors.New("unsupported state store schema")
	// ErrInsecure is returned (wrapped) by Open when the store or its
	// directory can be written by others, or the store read by others.
	ErrInsecure = errors.New("insecure permissions")
)

var (
	bucketFiles = []byte("files")
	bucketMeta  = []byte("meta")
	keySchema   = []byte("schema")
)

// bulkFill is the page fill of bulk writes (PutMany of bulkMin records or
// more): sorted batches, mostly a baseline appended in key order, so
// pages are packed full instead of half (bbolt's default, kept for small
// writes in random order).
const (
	bulkFill = 1.0
	bulkMin  = 64
)

// allocSize is how much the file grows at a time once past it (bbolt's
// default, 16 MiB, would leave up to that much unused).
const allocSize = 2 << 20

// Options configure Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock (DefaultLockTimeout when 0).
	LockTimeout time.Duration
	// ReadOnly opens the store shared and read-only: it must exist, and it
	// cannot be opened while a writer holds it.
	ReadOnly bool
	// NoSync skips fsync at commit. Only for tests and benchmarks: a crash
	// of the machine (not of the process) may then lose or corrupt the store.
	NoSync bool
}

// Entry is the last observation of one watched path.
type Entry struct {
	// Path is the watched path (the record's key, not stored in its value).
	Path string `json:"path,omitempty"`
	// Kind is the consumer kind that produced State.
	Kind string `json:"kind"`
	// Dev and Ino identify the inode (st_dev, st_ino).
	Dev uint64 `json:"dev,omitempty"`
	Ino uint64 `json:"ino,omitempty"`
	// Size is st_size.
	Size int64 `json:"size,omitempty"`
	// Mode is st_mode (type and permission bits).
	Mode uint32 `json:"mode,omitempty"`
	// UID and GID are the owner.
	UID uint32 `json:"uid,omitempty"`
	GID uint32 `json:"gid,omitempty"`
	// MtimeNS and CtimeNS are st_mtime and st_ctime, ns since the epoch.
	MtimeNS int64 `json:"mtime_ns,omitempty"`
	CtimeNS int64 `json:"ctime_ns,omitempty"`
	// SHA256 is the hex SHA-256 of the whole content (regular files only).
	SHA256 string `json:"sha256,omitempty"`
	// State is the consumer's state: never a secret.
	State json.RawMessage `json:"state,omitempty"`
	// Attrs are the ACLs, file capability, inode flags, labels and other
	// xattrs (values as keyed fingerprints); nil when never recorded (a
	// version 1 store, or the agent could not read them).
	Attrs *attrs.Set `json:"attrs,omitempty"`
	// Target is a symlink's target as readlink(2) returns it (the link is
	// never followed).
	Target string `json:"target,omitempty"`
	// Rdev is a device node's device number (st_rdev, the kernel's
	// encoding: unix.Major and unix.Minor split it).
	Rdev uint64 `json:"rdev,omitempty"`
	// Absent marks a watched path with no file.
	Absent bool `json:"absent,omitempty"`
	// UpdatedNS is when the record was written, ns since the epoch.
	UpdatedNS int64 `json:"updated_ns,omitempty"`
}

func encode(e *Entry) ([]byte, error) {
	if e.Path == "" {
		return nil, errors.New("state: entry without a path")
	}
	// As stored: the path is the key, not repeated in the value.
	r := *e
	r.Path = ""
	b, err := json.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("state: encoding %s: %w", e.Path, err)
	}
	return b, nil
}

func decode(k, v []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(v, &e); err != nil {
		return Entry{}, fmt.Errorf("state: record %q is corrupt: %w", k, err)
	}
	e.Path = string(k)
	return e, nil
}

// Store is the baseline store: one record per watched path in a bbolt
// file, locked against a second process. Its methods are safe for
// concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
	// schema is the version the store had when opened (before an upgrade).
	schema int
}

// Open opens the store at path, creating it (and its directory, 0700) when
// needed. A store another process holds fails within the lock timeout with
// an error that Is ErrLocked. A store or directory that group or others
// can write, a store others can read, a store that is a symlink or is owned
// by another user, and a store of a newer schema are refused.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("state: no store path")
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if !opts.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      timeout,
		ReadOnly:     opts.ReadOnly,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("state store %s: %w (waited %s for its lock)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	db.AllocSize = allocSize
	s := &Store{db: db, path: path, readOnly: opts.ReadOnly}
	// Created just now: check the mode the umask left.
	if err := checkFile(path); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func ownedByUs(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return sys.Uid == 0 || int(sys.Uid) == os.Geteuid()
}

func checkDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("state directory %s has mode %04o: %w: must not be writable by group or others", dir, st.Mode().Perm(), ErrInsecure)
	}
	if !ownedByUs(st) {
		return fmt.Errorf("state directory %s: %w: owned by another user", dir, ErrInsecure)
	}
	return nil
}

func checkFile(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("state store %s: %w: not a regular file (%s)", path, ErrInsecure, st.Mode().Type())
	}
	if st.Mode().Perm()&0o026 != 0 {
		return fmt.Errorf("state store %s has mode %04o: %w: must not be writable by group or others, nor readable by others", path, st.Mode().Perm(), ErrInsecure)
	}
	if !ownedByUs(st) {
		return fmt.Errorf("state store %s: %w: owned by another user", path, ErrInsecure)
	}
	return nil
}

// init creates the buckets and the schema version, or checks them.
func (s *Store) init() error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketFiles) == nil {
			return fmt.Errorf("state store %s: not a vigil state store (no %q or %q bucket)", s.path, bucketMeta, bucketFiles)
		}
		v := meta.Get(keySchema)
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			return fmt.Errorf("state store %s: %w: version %q", s.path, ErrSchema, v)
		}
		if n > SchemaVersion {
			return fmt.Errorf("state store %s: %w: version %d is newer than this vigil's %d (written by a newer vigil?)", s.path, ErrSchema, n, SchemaVersion)
		}
		s.schema = n
		return nil
	}
	fresh := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		fresh = tx.Bucket(bucketMeta) == nil && tx.Bucket(bucketFiles) == nil
		return nil
	}); err != nil {
		return err
	}
	if s.readOnly {
		return s.db.View(check) // opening an existing store read-only writes nothing
	}
	if !fresh {
		if err := s.db.View(check); err != nil {
			return err
		}
		return s.upgrade()
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketFiles); err != nil {
			return err
		}
		if meta.Get(keySchema) == nil {
			if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		return check(tx)
	})
}

// upgrade marks an older store as this version. Every older layout is a
// subset of this one (version 1 records have no Attrs, versions 1 and 2
// have no records of a tree's non-regular entries), so no record is
// rewritten: the next comparison fills what is missing, told so by
// MetaUpgradeEntries for what it must record quietly.
func (s *Store) upgrade() error {
	old := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		n, _ := strconv.Atoi(string(tx.Bucket(bucketMeta).Get(keySchema)))
		old = n < SchemaVersion
		return nil
	}); err != nil || !old {
		return err // a current store is not written to
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		n, _ := strconv.Atoi(string(meta.Get(keySchema)))
		if n >= SchemaVersion {
			return nil
		}
		if n < 3 {
			if err := meta.Put([]byte(MetaUpgradeEntries), []byte(strconv.Itoa(n))); err != nil {
				return err
			}
		}
		return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
}

// Schema is the schema version the store had when it was opened: older
// than SchemaVersion for a store this open upgraded (or a read-only open
// left as it was), SchemaVersion for a new or current one.
func (s *Store) Schema() int {
	if s.schema == 0 {
		return SchemaVersion
	}
	return s.schema
}

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Path returns the store's file name.
func (s *Store) Path() string { return s.path }

// Close releases the store and its lock.
func (s *Store) Close() error { return s.db.Close() }

// Get returns the record of path.
func (s *Store) Get(path string) (Entry, bool, error) {
	var e Entry
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFiles).Get([]byte(path))
		if v == nil {
			return nil
		}
		var err error
		e, err = decode([]byte(path), v)
		ok = err == nil
		return err
	})
	return e, ok, err
}

// GetMany returns the records of paths that have one, in one read
// transaction.
func (s *Store) GetMany(paths []string) (map[string]Entry, error) {
	out := make(map[string]Entry, len(paths))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for _, p := range paths {
			v := b.Get([]byte(p))
			if v == nil {
				continue
			}
			e, err := decode([]byte(p), v)
			if err != nil {
				return err
			}
			out[p] = e
		}
		return nil
	})
	return out, err
}

// Put writes one record in its own transaction (one fsync): prefer PutMany
// for more than a few.
func (s *Store) Put(e Entry) error { return s.PutMany([]Entry{e}) }

// PutMany writes records in one transaction: all or none.
func (s *Store) PutMany(es []Entry) error {
	if len(es) == 0 {
		return nil
	}
	type kv struct{ k, v []byte }
	kvs := make([]kv, len(es))
	for i := range es {
		v, err := encode(&es[i])
		if err != nil {
			return err
		}
		kvs[i] = kv{[]byte(es[i].Path), v}
	}
	// Key order fills pages densely and touches each page once. Stable:
	// the last record of a duplicated path wins.
	sort.SliceStable(kvs, func(i, j int) bool { return bytes.Compare(kvs[i].k, kvs[j].k) < 0 })
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		if len(kvs) >= bulkMin {
			b.FillPercent = bulkFill
		}
		for _, x := range kvs {
			if err := b.Put(x.k, x.v); err != nil {
				return fmt.Errorf("state: writing %s: %w", x.k, err)
			}
		}
		return nil
	})
}

// Delete removes the record of path (no error when there is none).
func (s *Store) Delete(path string) error { return s.DeleteMany([]string{path}) }

// DeleteMany removes records in one transaction.
func (s *Store) DeleteMany(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for _, p := range paths {
			if err := b.Delete([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Paths lists the recorded paths in byte order.
func (s *Store) Paths() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		out = make([]string, 0, b.Stats().KeyN)
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// ForEach calls fn for every record in path order, in one read
// transaction: fn must not write to the store.
func (s *Store) ForEach(fn func(Entry) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, v []byte) error {
			e, err := decode(k, v)
			if err != nil {
				return err
			}
			return fn(e)
		})
	})
}

// Prune removes the records of paths keep rejects (paths no longer
// watched), in one transaction, and returns how many went.
func (s *Store) Prune(keep func(path string) bool) (removed int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		var gone [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if !keep(string(k)) {
				gone = append(gone, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range gone {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		removed = len(gone)
		return nil
	})
	return removed, err
}

// Len returns the number of records.
func (s *Store) Len() (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketFiles).Stats().KeyN
		return nil
	})
	return n, err
}

// Meta returns a value of the meta bucket (nil when unset).
func (s *Store) Meta(key string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

// SetMeta sets a value of the meta bucket; "schema" is reserved.
func (s *Store) SetMeta(key string, val []byte) error {
	if key == string(keySchema) || key == "" {
		return fmt.Errorf("state: meta key %q is reserved", key)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), val)
	})
}

// DeleteMeta removes a value of the meta bucket; "schema" is reserved.
func (s *Store) DeleteMeta(key string) error {
	if key == string(keySchema) || key == "" {
		return fmt.Errorf("state: meta key %q is reserved", key)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete([]byte(key))
	})
}
