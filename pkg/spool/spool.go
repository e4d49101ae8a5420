// Package spool is a bounded, crash-safe, first-in first-out queue of
// records on disk: a network output appends each record, its sender reads
// them in order and removes them once delivered. It is one bbolt file (the
// library vigil's baseline store already uses): every append and every
// removal is a transaction, so a crash of the process or the machine leaves
// the queue as of the last commit, never torn (docs/operations.md, "The
// spool", says why bbolt and not a segment-file queue).
//
// The spool is bounded by bytes and by age: an append that would pass
// MaxBytes first removes the oldest records, and Expire removes records
// older than MaxAge. Every record removed so is passed to OnDrop and
// counted: nothing leaves the spool unseen.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketRecords = []byte("records")

	// ErrLocked is returned (wrapped) by Open when another process holds
	// the spool.
	ErrLocked = errors.New("locked: another vigil holds it")
	// ErrTooLarge is returned by Append for a record larger than MaxBytes.
	ErrTooLarge = errors.New("record larger than the spool")
)

// Why a record was dropped.
const (
	ReasonSize = "size" // the spool was full (MaxBytes)
	ReasonAge  = "age"  // older than MaxAge
)

// Options bound and tune a spool.
type Options struct {
	// MaxBytes bounds the records' bytes (not the file's size, which bbolt
	// keeps a little larger); 0: no bound.
	MaxBytes int64
	// MaxAge is how long a record may wait; 0: for ever.
	MaxAge time.Duration
	// OnDrop is called (inside the spool's lock) for every record dropped
	// to respect a bound, with the reason.
	OnDrop func(data []byte, reason string)
	// LockTimeout bounds the wait for another process's lock (1 s if 0).
	LockTimeout time.Duration
	// NoSync skips fdatasync at commit: for tests and benchmarks only.
	NoSync bool
}

// Item is one record in the spool.
type Item struct {
	ID   uint64
	At   time.Time // when it was appended
	Data []byte
}

// Stats describe a spool's content and what it dropped.
type Stats struct {
	Depth   int       `json:"depth"`
	Bytes   int64     `json:"bytes"`
	Oldest  time.Time `json:"oldest,omitempty"`
	Dropped uint64    `json:"dropped"`
	// DroppedBy counts the dropped records by reason (size, age).
	DroppedBy map[string]uint64 `json:"dropped_by"`
}

// Spool is an open spool. Its methods are safe for concurrent use.
type Spool struct {
	db   *bolt.DB
	path string
	opt  Options

	// mu serializes the transactions; cmu guards the counters, so that
	// Stats does not wait for a commit.
	mu      sync.Mutex
	cmu     sync.Mutex
	depth   int
	bytes   int64
	oldest  time.Time // zero when empty
	dropped map[string]uint64
}

// set stores the counters after a transaction.
// OnDrop sees the dropped records before Stats counts them.
func (s *Spool) set(depth int, bytes int64, oldest time.Time, drops []dropped) {
	if s.opt.OnDrop != nil {
		for _, d := range drops {
			s.opt.OnDrop(d.data, d.reason)
		}
	}
	s.cmu.Lock()
	s.depth, s.bytes, s.oldest = depth, bytes, oldest
	for _, d := range drops {
		s.dropped[d.reason]++
	}
	s.cmu.Unlock()
}

// header is the bytes stored before a record: its append time (ns).
const header = 8

// Open opens the spool at path (0600; its directory is made 0700),
// creating it when needed, and counts what it holds.
func Open(path string, opt Options) (*Spool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("spool %s: not a regular file", path)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("spool %s has mode %04o: must not be readable or writable by group or others", path, st.Mode().Perm())
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
			return nil, fmt.Errorf("spool %s: owned by another user", path)
		}
	}
	timeout := opt.LockTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: opt.NoSync, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("spool %s: %w (waited %s for its lock)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	// bbolt creates with the umask applied; never more than 0600.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	s := &Spool{db: db, path: path, opt: opt, dropped: map[string]uint64{}}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRecords)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < header {
				return fmt.Errorf("corrupt record %x", k)
			}
			if s.depth == 0 {
				s.oldest = at(v)
			}
			s.depth++
			s.bytes += int64(len(v) - header)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	return s, nil
}

func at(v []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(v[:header]))) }

// Path is the spool's file.
func (s *Spool) Path() string { return s.path }

// Append adds records at the end, in one transaction (one commit, however
// many records). Records that would pass MaxBytes make room by dropping the
// oldest ones first (OnDrop, reason size).
func (s *Spool) Append(recs [][]byte, now time.Time) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var add int64
	for _, r := range recs {
		if s.opt.MaxBytes > 0 && int64(len(r)) > s.opt.MaxBytes {
			return fmt.Errorf("%w: %d bytes, spool.max_bytes %d", ErrTooLarge, len(r), s.opt.MaxBytes)
		}
		add += int64(len(r))
	}
	depth, bytes, oldest := s.depth, s.bytes, s.oldest
	var drops []dropped
	// A batch larger than the whole spool keeps only its newest records.
	for s.opt.MaxBytes > 0 && add > s.opt.MaxBytes {
		drops = append(drops, dropped{recs[0], ReasonSize})
		add -= int64(len(recs[0]))
		recs = recs[1:]
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		if s.opt.MaxBytes > 0 && bytes+add > s.opt.MaxBytes {
			c := b.Cursor()
			var older []dropped
			for k, v := c.First(); k != nil && bytes+add > s.opt.MaxBytes; k, v = c.First() {
				older = append(older, dropped{append([]byte(nil), v[header:]...), ReasonSize})
				bytes -= int64(len(v) - header)
				depth--
				if err := c.Delete(); err != nil {
					return err
				}
			}
			drops = append(older, drops...) // reported oldest first
			oldest = time.Time{}
			if k, v := c.First(); k != nil {
				oldest = at(v)
			}
		}
		for _, r := range recs {
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], id)
			v := make([]byte, header+len(r))
			binary.BigEndian.PutUint64(v, uint64(now.UnixNano()))
			copy(v[header:], r)
			if err := b.Put(k[:], v); err != nil {
				return err
			}
			if depth == 0 {
				oldest = now
			}
			depth++
			bytes += int64(len(r))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool %s: appending: %w", s.path, err)
	}
	s.set(depth, bytes, oldest, drops)
	return nil
}

type dropped struct {
	data   []byte
	reason string
}

// Peek returns up to max records from the oldest, at most maxBytes of data
// (but always one record, when there is one).
func (s *Spool) Peek(max int, maxBytes int) ([]Item, error) {
	var out []Item
	size := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			if len(out) > 0 && size+len(v)-header > maxBytes {
				break
			}
			size += len(v) - header
			out = append(out, Item{ID: binary.BigEndian.Uint64(k), At: at(v), Data: append([]byte(nil), v[header:]...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool %s: reading: %w", s.path, err)
	}
	return out, nil
}

// Ack removes every record up to and including id: they were delivered.
func (s *Spool) Ack(id uint64) error {
	return s.remove(func(k, v []byte) (bool, string) {
		return binary.BigEndian.Uint64(k) <= id, ""
	})
}

// Expire drops the records older than MaxAge (OnDrop, reason age).
func (s *Spool) Expire(now time.Time) error {
	if s.opt.MaxAge <= 0 {
		return nil
	}
	limit := now.Add(-s.opt.MaxAge)
	s.cmu.Lock()
	old := s.depth > 0 && s.oldest.Before(limit)
	s.cmu.Unlock()
	if !old {
		return nil
	}
	return s.remove(func(k, v []byte) (bool, string) {
		return at(v).Before(limit), ReasonAge
	})
}

// remove deletes records from the oldest while match says so; a non-empty
// reason counts them as dropped.
func (s *Spool) remove(match func(k, v []byte) (bool, string)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	depth, bytes := s.depth, s.bytes
	oldest := s.oldest
	var drops []dropped
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			ok, reason := match(k, v)
			if !ok {
				break
			}
			if reason != "" {
				drops = append(drops, dropped{append([]byte(nil), v[header:]...), reason})
			}
			depth--
			bytes -= int64(len(v) - header)
			if err := c.Delete(); err != nil {
				return err
			}
		}
		oldest = time.Time{}
		if k, v := c.First(); k != nil {
			oldest = at(v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool %s: removing: %w", s.path, err)
	}
	s.set(depth, bytes, oldest, drops)
	return nil
}

// Stats returns the spool's depth, size, oldest record and drop counts.
func (s *Spool) Stats() Stats {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	st := Stats{Depth: s.depth, Bytes: s.bytes, Oldest: s.oldest, DroppedBy: map[string]uint64{}}
	for _, r := range []string{ReasonSize, ReasonAge} {
		st.DroppedBy[r] = s.dropped[r]
		st.Dropped += s.dropped[r]
	}
	return st
}

// Close closes the file; what it holds stays for the next Open.
func (s *Spool) Close() error { return s.db.Close() }
