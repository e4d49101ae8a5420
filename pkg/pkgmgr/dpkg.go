package pkgmgr

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Problem is a line of a package database file vigil could not read: it is
// passed over, the rest is still read.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Owner is what a package database says of one file.
type Owner struct {
	Package string // the owning package ("" when none owns the file)
	Version string
	// Digest is the packaged content's digest (hex) and Algo its algorithm
	// ("md5", "sha256", ...); "" when the database has none for the file.
	Digest, Algo string
	// Conffile: the file is a configuration file the admin may edit.
	Conffile bool
}

// Dpkg reads dpkg's database: which package owns a path (info/*.list),
// the packaged content's md5 (info/<pkg>.md5sums) and the conffiles and
// versions (status). The path index is built once and rebuilt when the
// database has changed since (Stamp).
type Dpkg struct {
	// Admindir is dpkg's database directory (/var/lib/dpkg).
	Admindir string
	// Root is the directory the packages' paths are under ("/"; dpkg's
	// --instdir).
	Root string

	mu       sync.Mutex
	stamp    time.Time
	owners   map[string]string // path as in the .list files -> package (name or name:arch, as the file is named)
	status   map[string]dpkgStatus
	problems []Problem
}

type dpkgStatus struct {
	version   string
	conffiles map[string]string // path -> md5 as installed
}

// NewDpkg reads dpkg's database at admindir, for packages installed under
// root.
func NewDpkg(admindir, root string) *Dpkg {
	if root == "" {
		root = "/"
	}
	return &Dpkg{Admindir: admindir, Root: root}
}

// Stamp is the newest change time of dpkg's database (status, the info
// directory, the updates journal): it moves whenever dpkg records a change.
func (d *Dpkg) Stamp() time.Time {
	var t time.Time
	for _, p := range []string{"status", "info", "updates"} {
		if st, err := os.Stat(filepath.Join(d.Admindir, p)); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// Problems returns the malformed lines met by the last refresh.
func (d *Dpkg) Problems() []Problem {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Problem(nil), d.problems...)
}

func (d *Dpkg) refresh() error {
	stamp := d.Stamp()
	if d.owners != nil && stamp.Equal(d.stamp) {
		return nil
	}
	owners := map[string]string{}
	var problems []Problem
	lists, err := filepath.Glob(filepath.Join(d.Admindir, "info", "*.list"))
	if err != nil {
		return err
	}
	for _, l := range lists {
		pkg := strings.TrimSuffix(filepath.Base(l), ".list")
		f, err := os.Open(l)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed while read
			}
			return err
		}
		problems = append(problems, parseList(f, l, pkg, owners)...)
		f.Close()
	}
	status := map[string]dpkgStatus{}
	if f, err := os.Open(filepath.Join(d.Admindir, "status")); err == nil {
		problems = append(problems, parseStatus(f, filepath.Join(d.Admindir, "status"), status)...)
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// dpkg journals each change to a package in updates/NNNN (a status
	// stanza) and folds them into status at checkpoints: the newest word
	// on a package is the last journal entry that names it.
	updates, err := filepath.Glob(filepath.Join(d.Admindir, "updates", "[0-9]*"))
	if err != nil {
		return err
	}
	sort.Strings(updates)
	for _, u := range updates {
		f, err := os.Open(u)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // folded into status while read
			}
			return err
		}
		problems = append(problems, parseStatus(f, u, status)...)
		f.Close()
	}
	d.owners, d.status, d.problems, d.stamp = owners, status, problems, stamp
	return nil
}

// parseList adds the paths of one info/<pkg>.list to owners. A directory
// is listed by every package that has files in it: the first stays.
func parseList(r io.Reader, name, pkg string, owners map[string]string) []Problem {
	var problems []Problem
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "/") {
			problems = append(problems, Problem{name, n, "not an absolute path"})
			continue
		}
		if _, ok := owners[line]; !ok {
			owners[line] = pkg
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, Problem{name, n + 1, err.Error()})
	}
	return problems
}

// parseStatus reads dpkg's status file: each installed package's version
// and conffiles (" /path md5 [obsolete|remove-on-upgrade]" lines under
// Conffiles:), keyed by name and by name:arch.
func parseStatus(r io.Reader, name string, out map[string]dpkgStatus) []Problem {
	var problems []Problem
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	var pkg, arch, version, state string
	var conf map[string]string
	inConf := false
	flush := func() {
		if pkg != "" {
			if strings.HasSuffix(state, " not-installed") || strings.HasSuffix(state, " config-files") {
				delete(out, pkg)
				if arch != "" {
					delete(out, pkg+":"+arch)
				}
			} else {
				s := dpkgStatus{version: version, conffiles: conf}
				out[pkg] = s
				if arch != "" {
					out[pkg+":"+arch] = s
				}
			}
		}
		pkg, arch, version, state, conf, inConf = "", "", "", "", nil, false
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !inConf {
				continue // a continuation of another field
			}
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[0], "/") {
				problems = append(problems, Problem{name, n, "conffile line: want \" /path md5\""})
				continue
			}
			if conf == nil {
				conf = map[string]string{}
			}
			conf[f[0]] = f[1]
			continue
		}
		inConf = false
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			problems = append(problems, Problem{name, n, "not a field"})
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			pkg = v
		case "Architecture":
			arch = v
		case "Version":
			version = v
		case "Status":
			state = v
		case "Conffiles":
			inConf = true
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		problems = append(problems, Problem{name, n + 1, err.Error()})
	}
	return problems
}

// parseMD5Sums finds path's md5 in an info/<pkg>.md5sums file ("md5  path",
// the path without its leading slash). It returns "" when the file does not
// list path.
func parseMD5Sums(r io.Reader, name, path string) (string, []Problem) {
	var problems []Problem
	want := strings.TrimPrefix(path, "/")
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	found := ""
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		sum, p, ok := bytes.Cut(line, []byte("  "))
		if !ok || len(sum) != 32 || !isHex(sum) {
			problems = append(problems, Problem{name, n, "want \"md5  path\""})
			continue
		}
		if found == "" && string(p) == want {
			found = string(sum)
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, Problem{name, n + 1, err.Error()})
	}
	return found, problems
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Lookup says which package owns path (an absolute path on this host,
// under Root) and the packaged content's md5. A path no package lists has
// an empty Owner.Package.
func (d *Dpkg) Lookup(path string) (Owner, []Problem, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refresh(); err != nil {
		return Owner{}, nil, err
	}
	rel := path
	if d.Root != "/" {
		r := strings.TrimSuffix(d.Root, "/")
		if path != r && !strings.HasPrefix(path, r+"/") {
			return Owner{}, nil, nil
		}
		rel = strings.TrimPrefix(path, r)
	}
	pkg, ok := d.owners[rel]
	if !ok {
		return Owner{}, nil, nil
	}
	o := Owner{Package: pkg, Algo: "md5"}
	st := d.status[pkg]
	o.Version = st.version
	if name, _, ok := strings.Cut(pkg, ":"); ok {
		o.Package = name
	}
	if sum, ok := st.conffiles[rel]; ok {
		o.Conffile, o.Digest = true, sum
		return o, nil, nil
	}
	mf := filepath.Join(d.Admindir, "info", pkg+".md5sums")
	f, err := os.Open(mf)
	if errors.Is(err, os.ErrNotExist) {
		return o, nil, nil // a package without md5sums: owned, no digest
	}
	if err != nil {
		return o, nil, err
	}
	defer f.Close()
	sum, problems := parseMD5Sums(f, mf, rel)
	o.Digest = sum
	return o, problems, nil
}

// Busy reports whether a dpkg process holds its database's lock (it is in
// the middle of a run: files may be in place before their digests are).
func (d *Dpkg) Busy() bool { return lockHeld(filepath.Join(d.Admindir, "lock")) }

// lockHeld asks whether another process holds a write lock on the file
// (fcntl F_GETLK: the question takes no lock).
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}

// dpkgTemp are the suffixes of the names dpkg writes a file under before
// it is renamed into place, or keeps an old one under for a moment.
var dpkgTemp = []string{".dpkg-new", ".dpkg-tmp", ".dpkg-old", ".dpkg-dist", ".dpkg-bak"}

// Transient reports whether path is one of dpkg's temporary names.
func Transient(path string) bool {
	for _, s := range dpkgTemp {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}
