package agent

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/pkgmgr"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// markedActor is the record's actor below a package manager, if any: the
// burst's last writer when it is marked, else its first marked actor.
func markedActor(b *burst) *sensor.Event {
	if b == nil {
		return nil
	}
	if b.last != nil && b.last.Proc.Package.Marked() {
		return b.last
	}
	for _, e := range b.actors {
		if e.Proc.Package.Marked() {
			return e
		}
	}
	return nil
}

// packageDict is vigil.package: the package manager the change was made
// under (the kernel's lineage), with what the package database says of
// the new content where it was checked (v is nil when it was not).
func packageDict(e *sensor.Event, v *verdict) *zerolog.Event {
	p := e.Proc.Package
	d := zerolog.Dict().Str("manager", p.Manager).Uint32("root_pid", p.RootPID).Bool("script", p.Script)
	if v != nil {
		if v.name != "" {
			d.Str("name", v.name)
		}
		if v.version != "" {
			d.Str("version", v.version)
		}
		d.Str("verified", string(v.result))
		if v.problem != "" {
			d.Str("problem", v.problem)
		}
	}
	return d
}

// verdict is a package database's word on a file's new content.
type verdict struct {
	name, version string
	result        verifyResult
	problem       string // why it could not be checked, when it could not
}

type verifyResult string

const (
	verifyMatch       verifyResult = "match"
	verifyMismatch    verifyResult = "mismatch"
	verifyNotPackaged verifyResult = "not-packaged"
	verifyConffile    verifyResult = "conffile"
	verifyUnknown     verifyResult = "unknown"
	// verifyUnverified: the verdict was not waited for (the queue of
	// records waiting for one was full); problem says so.
	verifyUnverified verifyResult = "unverified"
)

// verifier checks a marked change's new content against the package
// databases (pkg/pkgmgr).
type verifier struct {
	dpkg   *pkgmgr.Dpkg
	rpm    *pkgmgr.Rpm
	settle time.Duration
	log    zerolog.Logger
}

func newVerifier(c config.Packages, log zerolog.Logger) *verifier {
	if !c.Verify {
		return nil
	}
	return &verifier{
		dpkg:   pkgmgr.NewDpkg(c.DpkgAdmindir, c.Root),
		rpm:    pkgmgr.NewRpm(c.RpmDBPath, c.Root),
		settle: c.Settle.Duration,
		log:    log,
	}
}

// content is one read of the file: what the agent read for its consumer
// (data, up to maxRead; nil when larger) and the sha256 of all of it.
type content struct {
	path   string
	data   []byte
	sha256 string
}

// verifyJob is one marked change whose new content is checked against the
// package database, off the record stream: the verifier's goroutine (run)
// checks it at once and again whenever the database changes, until it has
// a verdict, and the held record (held.go) is written then.
type verifyJob struct {
	id  uint64 // the held record's
	mgr uint8
	c   content
	// md5 is the content's md5, made by the pipeline from the content it
	// read (its data is not kept), or by the verifier for a file over
	// maxRead.
	md5 string
	// at is when the change was made (wall clock); deadline is at most
	// packages.settle after the pipeline handed the job over.
	at, deadline time.Time
	db           pkgmgr.DB
	seen         dbState  // the database as the last check saw it
	last         *verdict // the last check's verdict
}

// dbState is what tells a package database changed: its newest change
// and whether a manager holds its lock.
type dbState struct {
	stamp time.Time
	busy  bool
}

func (v *verifier) state(db pkgmgr.DB) dbState {
	var s dbState
	if db == pkgmgr.DBDpkg || db == pkgmgr.DBAny {
		s.stamp = v.dpkg.Stamp()
	}
	if db == pkgmgr.DBRpm || db == pkgmgr.DBAny {
		if t := v.rpm.Stamp(); t.After(s.stamp) {
			s.stamp = t
		}
	}
	s.busy = v.busy(db)
	return s
}

// verdictMsg is a job's final verdict.
type verdictMsg struct {
	id uint64
	v  *verdict
}

// try checks a job once; done reports the verdict is final. A verdict
// may come before the manager has recorded the change (dpkg renames a
// file into place, then writes the package's digests, then its new
// version; a new conffile's digest is "newconffile" until it is
// configured): it is final once the database has changed after the change
// and no manager holds its lock, or at the deadline. A match is final at
// once when no manager holds the lock (while one does, the digest may be
// the new package's and the version still the old one's).
func (v *verifier) try(j *verifyJob, now time.Time) (vd *verdict, done bool) {
	m, ok := pkgmgr.ByID(j.mgr)
	if !ok {
		return &verdict{result: verifyUnknown, problem: fmt.Sprintf("unknown package manager id %d", j.mgr)}, true
	}
	if pkgmgr.Transient(j.c.path) {
		// dpkg's name for a file on its way into place (or out): no
		// package lists it, and the final name gets its own record.
		return &verdict{result: verifyNotPackaged}, true
	}
	j.db = m.DB
	j.seen = v.state(m.DB)
	vd, stamp := v.check(m.DB, j.c, &j.md5)
	j.last = vd
	if !now.Before(j.deadline) || (vd.result == verifyMatch && !j.seen.busy) {
		return vd, true
	}
	if stamp.After(j.at) && !j.seen.busy {
		return vd, true // the manager has finished and recorded what it did
	}
	return vd, false
}

// run is the verifier's goroutine: it checks each job from jobs and sends
// its verdict to out once final. A pending job is checked again only when
// its database changed (a check reads the database's files), and ends
// with its last verdict at its deadline. When jobs is closed, the pending
// ones are finished (each within its deadline) and out is closed.
func (v *verifier) run(jobs <-chan *verifyJob, out chan<- verdictMsg) {
	defer close(out)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var pending []*verifyJob
	for jobs != nil || len(pending) > 0 {
		select {
		case j, ok := <-jobs:
			if !ok {
				jobs = nil
				continue
			}
			if vd, done := v.try(j, time.Now()); done {
				out <- verdictMsg{j.id, vd}
			} else {
				pending = append(pending, j)
			}
		case now := <-tick.C:
			states := map[pkgmgr.DB]dbState{}
			kept := pending[:0]
			for _, j := range pending {
				st, ok := states[j.db]
				if !ok {
					st = v.state(j.db)
					states[j.db] = st
				}
				vd, done := j.last, false
				switch {
				case !st.stamp.Equal(j.seen.stamp) || st.busy != j.seen.busy:
					vd, done = v.try(j, now)
				case !now.Before(j.deadline):
					done = true
				}
				if done {
					out <- verdictMsg{j.id, vd}
				} else {
					kept = append(kept, j)
				}
			}
			for i := len(kept); i < len(pending); i++ {
				pending[i] = nil
			}
			pending = kept
		}
	}
}

// busy reports whether a manager of the database holds its lock.
func (v *verifier) busy(db pkgmgr.DB) bool {
	switch db {
	case pkgmgr.DBDpkg:
		return v.dpkg.Busy()
	case pkgmgr.DBRpm:
		return v.rpm.Busy()
	}
	return v.dpkg.Busy() || v.rpm.Busy()
}

// check looks the path up in the manager's databases; stamp is the newest
// change of the databases read.
func (v *verifier) check(db pkgmgr.DB, c content, md5sum *string) (*verdict, time.Time) {
	var stamp time.Time
	var owner pkgmgr.Owner
	var problems []string
	if db == pkgmgr.DBDpkg || db == pkgmgr.DBAny {
		stamp = v.dpkg.Stamp()
		o, probs, err := v.dpkg.Lookup(c.path)
		for _, p := range probs {
			v.log.Warn().Str("problem", p.String()).Msg("dpkg database")
		}
		if err != nil {
			problems = append(problems, "dpkg: "+err.Error())
		}
		owner = o
	}
	if owner.Package == "" && (db == pkgmgr.DBRpm || db == pkgmgr.DBAny) {
		if s := v.rpm.Stamp(); s.After(stamp) {
			stamp = s
		}
		o, err := v.rpm.Lookup(c.path)
		if err != nil && !(db == pkgmgr.DBAny && len(problems) == 0) {
			problems = append(problems, "rpm: "+err.Error())
		}
		owner = o
	}
	if owner.Package == "" {
		if len(problems) > 0 {
			return &verdict{result: verifyUnknown, problem: strings.Join(problems, "; ")}, stamp
		}
		return &verdict{result: verifyNotPackaged}, stamp
	}
	vd := &verdict{name: owner.Package, version: owner.Version}
	if owner.Digest == "" {
		vd.result, vd.problem = verifyUnknown, "the package database has no digest for the file"
		return vd, stamp
	}
	got, err := v.digest(owner.Algo, c, md5sum)
	if err != nil {
		vd.result, vd.problem = verifyUnknown, err.Error()
		return vd, stamp
	}
	switch {
	case strings.EqualFold(got, owner.Digest):
		vd.result = verifyMatch
	case owner.Conffile:
		vd.result = verifyConffile // a configuration file: the admin's edits are expected
	default:
		vd.result = verifyMismatch
	}
	return vd, stamp
}

// digest hashes the content read for the consumer (the sha256 the agent
// made already); a file over maxRead, whose content was not kept, is read
// again for another algorithm.
func (v *verifier) digest(algo string, c content, cache *string) (string, error) {
	switch algo {
	case "sha256":
		if c.sha256 == "" {
			return "", fmt.Errorf("the file could not be read")
		}
		return c.sha256, nil
	case "md5":
		if *cache != "" {
			return *cache, nil
		}
		h := md5.New()
		if c.data != nil {
			h.Write(c.data)
		} else {
			fd, err := openNoFollow(c.path)
			if err != nil {
				return "", fmt.Errorf("reading for md5: %w", err)
			}
			f := os.NewFile(uintptr(fd), c.path)
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("reading for md5: %w", err)
			}
		}
		*cache = hex.EncodeToString(h.Sum(nil))
		return *cache, nil
	}
	return "", fmt.Errorf("digest algorithm %q not supported", algo)
}

// wallTimeOf is the wall-clock time of a kernel timestamp (CLOCK_BOOTTIME
// nanoseconds), to the clock's precision: compared with file times, where
// the boot time records use (whole seconds) is too coarse.
func wallTimeOf(bootNS uint64) time.Time {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return now
	}
	return now.Add(-time.Duration(ts.Nano() - int64(bootNS)))
}
