package agent

import (
	"os"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/state"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// storeWriter records the pipeline's observations in the baseline store, so
// that a restart compares with what was last seen (scan.Scan's record
// format). Entries are written one transaction per batch, since every bbolt
// commit waits for two fdatasync calls (per record, they held the pipeline
// to a few hundred records a second; docs/benchmarks.md). While the loop
// runs, a committer goroutine writes the batches so that the pipeline does
// not wait for the disk. It is used by the loop goroutine only.
type storeWriter struct {
	st  *state.Store
	log zerolog.Logger
	key []byte // the host key, for xattr value fingerprints
	// pending are entries not yet handed to a commit.
	pending []state.Entry
	// commits carries batches to the committer; nil before start and after
	// stop, when flush commits itself.
	commits   chan []state.Entry
	committed chan struct{}
}

// maxPending bounds a batch of store entries.
const maxPending = 4096

func newStoreWriter(st *state.Store, log zerolog.Logger, key []byte) *storeWriter {
	return &storeWriter{st: st, log: log, key: key}
}

// observed records a file's state as just read (st nil: absent), with its
// attributes as just read and compared (set nil: not readable; the next
// start then records them quietly).
func (w *storeWriter) observed(f *watch.File, cur consumer.State, sum string, st *syscall.Stat_t, set *attrs.Set) {
	e := state.Entry{Path: f.Path, Kind: f.Kind, State: cur, UpdatedNS: time.Now().UnixNano()}
	if st == nil {
		e.Absent = true
	} else {
		e.Dev, e.Ino, e.Size, e.Mode, e.UID, e.GID = st.Dev, st.Ino, st.Size, st.Mode, st.Uid, st.Gid
		e.MtimeNS, e.CtimeNS, e.SHA256 = st.Mtim.Nano(), st.Ctim.Nano(), sum
		e.Attrs = set
	}
	typeFields(&e, st)
	w.pending = append(w.pending, e)
	if len(w.pending) >= maxPending {
		w.flush()
	}
}

// typeFields records what scan.Scan records of a symlink (its target, read
// with readlink, never followed) and of a device node (its number).
func typeFields(e *state.Entry, st *syscall.Stat_t) {
	if st == nil {
		return
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		if t, err := os.Readlink(e.Path); err == nil {
			e.Target = t
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Rdev = st.Rdev
	}
}

// flush commits the pending entries in one transaction. The loop calls it
// at every coalescing tick (not when its queue runs empty: under a steady
// trickle that was still a commit every few records), so a crash forgets at
// most the last tick's states, which the next start then reports again
// (origin startup): reported twice, never lost.
func (w *storeWriter) flush() {
	if len(w.pending) == 0 {
		return
	}
	if w.commits == nil {
		w.put(w.pending)
		w.pending = w.pending[:0]
		return
	}
	if len(w.pending) < maxPending {
		select {
		case w.commits <- w.pending:
		default:
			return // the committer is still writing: keep gathering
		}
	} else {
		w.commits <- w.pending // a full batch waits for the committer
	}
	w.pending = nil
}

func (w *storeWriter) put(es []state.Entry) {
	if err := w.st.PutMany(es); err != nil {
		w.log.Warn().Err(err).Int("entries", len(es)).Msg("recording state")
	}
}

// start starts the goroutine that commits batches in order.
func (w *storeWriter) start() {
	w.commits, w.committed = make(chan []state.Entry, 1), make(chan struct{})
	go func(in <-chan []state.Entry, done chan<- struct{}) {
		defer close(done)
		for es := range in {
			w.put(es)
		}
	}(w.commits, w.committed)
}

// stop commits what is pending and waits for the committer.
func (w *storeWriter) stop() {
	if w.commits == nil {
		return
	}
	if len(w.pending) > 0 {
		w.commits <- w.pending
		w.pending = nil
	}
	close(w.commits)
	<-w.committed
	w.commits = nil
}

// Close closes the store.
func (w *storeWriter) Close() error { return w.st.Close() }

// readAttrs reads the extended attributes of the file at path if it is
// still the inode st describes (as scan.Scan records them); nil (never
// recorded: the next start records them quietly) when it cannot.
func readAttrs(path string, st *syscall.Stat_t, key []byte) *attrs.Set {
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFREG && typ != unix.S_IFDIR {
		s, err := attrs.ReadPath(path, key)
		if err != nil {
			return nil
		}
		return s
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var now unix.Stat_t
	if unix.Fstat(fd, &now) != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return nil
	}
	s, err := attrs.ReadFd(fd, true, key)
	if err != nil {
		return nil
	}
	return s
}
