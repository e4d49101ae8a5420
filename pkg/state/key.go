// Package state keeps what vigil must remember across restarts: the host
// key for keyed fingerprints (so a password change is detected without the
// hash ever being stored) and, with the baseline store, each watched file's
// last observed state.
package state

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the host key's name in the state directory.
const KeyFile = "host.key"

// LoadKey reads the host key from dir, creating dir (0700) and a new
// 32-byte key (0600) the first time. A key that others can read is refused.
func LoadKey(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("host key %s has mode %04o: must not be readable by group or others", p, st.Mode().Perm())
		}
		if len(b) < 32 {
			return nil, fmt.Errorf("host key %s is %d bytes, want 32", p, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading host key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, key, 0o600); err != nil {
		return nil, fmt.Errorf("writing host key: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("writing host key: %w", err)
	}
	return key, nil
}
