package pkgmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/glebarez/go-sqlite" // the "sqlite" database/sql driver go-rpmdb opens, pure Go
	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
)

// Rpm reads rpm's package database (github.com/knqyf263/go-rpmdb: SQLite,
// NDB or Berkeley DB, in pure Go): which package owns a path and the
// packaged content's digest. The index is rebuilt when the database has
// changed since (Stamp).
type Rpm struct {
	// DBPath is rpm's database directory (%_dbpath: /var/lib/rpm on rpm
	// distributions, ~/.rpmdb with Debian's rpm).
	DBPath string
	// Root is the directory the packages' paths are under ("/"; rpm's --root).
	Root string

	mu    sync.Mutex
	stamp time.Time
	files map[string]Owner
}

// NewRpm reads the rpm database in dbpath, for packages installed under root.
func NewRpm(dbpath, root string) *Rpm {
	if root == "" {
		root = "/"
	}
	return &Rpm{DBPath: dbpath, Root: root}
}

// rpmDBFiles are the database files of each backend, newest first.
var rpmDBFiles = []string{"rpmdb.sqlite", "Packages.db", "Packages"}

func (r *Rpm) dbFile() (string, error) {
	for _, f := range rpmDBFiles {
		p := filepath.Join(r.DBPath, f)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no rpm database in %s (%s)", r.DBPath, strings.Join(rpmDBFiles, ", "))
}

// Stamp is the newest change time of the database's files (a SQLite
// database's write-ahead log included).
func (r *Rpm) Stamp() time.Time {
	var t time.Time
	for _, f := range append([]string{"rpmdb.sqlite-wal"}, rpmDBFiles...) {
		if st, err := os.Stat(filepath.Join(r.DBPath, f)); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

func (r *Rpm) refresh() error {
	stamp := r.Stamp()
	if r.files != nil && stamp.Equal(r.stamp) {
		return nil
	}
	p, err := r.dbFile()
	if err != nil {
		return err
	}
	db, err := rpmdb.Open(p)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer db.Close()
	pkgs, err := db.ListPackages()
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	files := map[string]Owner{}
	for _, pk := range pkgs {
		fi, err := pk.InstalledFiles()
		if err != nil {
			return fmt.Errorf("reading %s: package %s: %w", p, pk.Name, err)
		}
		ver := pk.Version + "-" + pk.Release
		if pk.Epoch != nil && *pk.Epoch != 0 {
			ver = fmt.Sprintf("%d:%s", *pk.Epoch, ver)
		}
		for _, f := range fi {
			if _, ok := files[f.Path]; ok {
				continue
			}
			o := Owner{Package: pk.Name, Version: ver, Conffile: f.Flags&rpmdb.FileFlags(rpmdb.RPMFILE_CONFIG) != 0}
			if f.Digest != "" {
				o.Digest, o.Algo = f.Digest, pk.DigestAlgorithm.String()
			}
			files[f.Path] = o
		}
	}
	r.files, r.stamp = files, stamp
	return nil
}

// Lookup says which package owns path (an absolute path on this host,
// under Root) and the packaged content's digest.
func (r *Rpm) Lookup(path string) (Owner, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		return Owner{}, err
	}
	rel := path
	if r.Root != "/" {
		root := strings.TrimSuffix(r.Root, "/")
		if path != root && !strings.HasPrefix(path, root+"/") {
			return Owner{}, nil
		}
		rel = strings.TrimPrefix(path, root)
	}
	return r.files[rel], nil
}

// Busy reports whether an rpm process holds its database's lock.
func (r *Rpm) Busy() bool { return lockHeld(filepath.Join(r.DBPath, ".rpm.lock")) }
