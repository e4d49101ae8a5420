package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/go-multierror"
)

// ErrInsecure marks a configuration file or directory that someone other
// than root could change: whoever can edit the configuration can stop
// vigil from watching.
var ErrInsecure = errors.New("unsafe permissions")

// CheckPermissions checks the configuration files a Config was read from
// (its Sources), the directories holding them and the conf.d directory
// beside the main file: each must be owned by root (or by the user running
// vigil) and not writable by group or others. It returns every problem.
func CheckPermissions(sources []string) error {
	var errs *multierror.Error
	seen := map[string]bool{}
	check := func(p string, dir bool) {
		if seen[p] {
			return
		}
		seen[p] = true
		if err := checkPerm(p, dir); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	for i, s := range sources {
		if !filepath.IsAbs(s) && !fileExists(s) {
			continue // "(embedded default)", or a text given to Parse
		}
		check(s, false)
		check(filepath.Dir(s), true)
		if i == 0 {
			if _, err := os.Stat(filepath.Join(filepath.Dir(s), "conf.d")); err == nil {
				check(filepath.Join(filepath.Dir(s), "conf.d"), true)
			}
		}
	}
	return errs.ErrorOrNil()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func checkPerm(p string, dir bool) error {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone since it was read: nothing left to protect
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", p, err)
	}
	what := "config file"
	if dir {
		what = "config directory"
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s %s has mode %04o: %w: must not be writable by group or others (chmod go-w %s)",
			what, p, st.Mode().Perm(), ErrInsecure, p)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s is owned by uid %d: %w: must be owned by root (chown root %s)",
			what, p, sys.Uid, ErrInsecure, p)
	}
	return nil
}
