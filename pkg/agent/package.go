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

// verify checks the new content of a file written below manager id mgr.
// A verdict other than match may come before the manager has recorded the
// change (dpkg renames a file into place, then writes the package's
// digests; a new conffile's digest is "newconffile" until it is
// configured): it waits, at most settle, until the database has changed
// after at and no manager holds its lock, checking again as it goes.
func (v *verifier) verify(mgr uint8, c content, at time.Time) *verdict {
	m, ok := pkgmgr.ByID(mgr)
	if !ok {
		return &verdict{result: verifyUnknown, problem: fmt.Sprintf("unknown package manager id %d", mgr)}
	}
	deadline := time.Now().Add(v.settle)
	if pkgmgr.Transient(c.path) {
		// dpkg's name for a file on its way into place (or out): no
		// package lists it, and the final name gets its own record.
		return &verdict{result: verifyNotPackaged}
	}
	var md5sum string
	for {
		vd, stamp := v.check(m.DB, c, &md5sum)
		if vd.result == verifyMatch || !time.Now().Before(deadline) {
			return vd
		}
		if stamp.After(at) && !v.busy(m.DB) {
			return vd // the manager has finished and recorded what it did
		}
		time.Sleep(50 * time.Millisecond)
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
