package testutil

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
)

// The secrets audit: every byte vigil writes during the privileged suites
// (records, logs, the state stores the tests leave) is also appended to a
// collection directory named by $VIGIL_SECRETS_AUDIT; after the suites,
// `make test-host` scans the collection for the secrets the fixtures plant
// (Secrets) and fails on any (pkg/testutil/auditrun_test.go).

// AuditEnv names the collection directory.
const AuditEnv = "VIGIL_SECRETS_AUDIT"

// Secrets are distinctive parts of the secrets the privileged tests plant
// in watched files: password hash bodies, private key material, lines the
// diff consumer must redact. None may ever appear in anything vigil wrote.
// A test that plants a new secret adds it here.
var Secrets = []string{
	// pkg/agent agent_test.go shadow0: root's and alice's hashes
	"Qq5X0lKk8cJ0qV4jv6W2JtZQy9rQ2n9b9bXJYb9xQ3yQm6Qe1v2zQqQ9w2mQ8y",
	"Zk3PqE0fLz2sXbM1vQ8nW4rT6yU9iO0pA2sD4fG6hJ8",
	// pkg/agent TestShadowTools: the hash usermod -p sets
	"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdef",
	// pkg/agent hostile_test.go: the shadow a symlink points at, the
	// private key and the password line planted in a diff-watched file
	HostileShadowHash,
	HostileKeyLine,
	HostilePassword,
	// pkg/agent attrs_test.go: user.* xattr values (fingerprinted, never shown)
	XattrSecret0,
	XattrSecret1,
}

// The xattr tests' secrets (pkg/agent attrs_test.go plants them as
// user.* values).
const (
	XattrSecret0 = "xattr-secret-value-0-Vf8Kq2LmZ9"
	XattrSecret1 = "xattr-secret-value-1-Rw3Jt7NbX4"
)

// The hostile tests' secrets (pkg/agent hostile_test.go plants them).
const (
	HostileShadowHash = "HoStIlEsHaDoWhAsH0123456789abcdefghijKLMNOPQRSTUV"
	HostileKeyLine    = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQHOSTILEKEYMATERIAL"
	HostilePassword   = "hunter2-hostile-password-value"
)

var auditSeq atomic.Uint64

// AuditWriter returns a writer that appends to a new file of the
// collection (name, this process and a sequence number make it unique),
// or io.Discard when no collection is kept. Safe for concurrent writes.
func AuditWriter(name string) io.Writer {
	dir := os.Getenv(AuditEnv)
	if dir == "" {
		return io.Discard
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.log", name, os.Getpid(), auditSeq.Add(1)))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		panic(fmt.Sprintf("secrets audit: %v", err))
	}
	return &lockedWriter{f: f}
}

type lockedWriter struct {
	mu sync.Mutex
	f  *os.File
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Write(p)
}

// AuditTree copies every regular file under dir (a state directory: the
// bbolt store keeps states as plain JSON values) into the collection, byte
// for byte. It does nothing when no collection is kept.
func AuditTree(name, dir string) error {
	adir := os.Getenv(AuditEnv)
	if adir == "" {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("secrets audit: %w", err)
		}
		dst := filepath.Join(adir, fmt.Sprintf("%s-%d-%d-%s.state", name, os.Getpid(), auditSeq.Add(1), d.Name()))
		return os.WriteFile(dst, b, 0o600)
	})
}

// Leak is a secret found in a file of the collection. It names the secret
// by its index in the list, never by its text.
type Leak struct {
	File   string
	Secret int
}

func (l Leak) String() string { return fmt.Sprintf("%s holds secret #%d", l.File, l.Secret) }

// ScanSecrets reads every file under dir and returns each (file, secret)
// pair found, sorted.
func ScanSecrets(dir string, secrets []string) ([]Leak, error) {
	var leaks []Leak
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				leaks = append(leaks, Leak{File: filepath.Base(p), Secret: i})
			}
		}
		return nil
	})
	sort.Slice(leaks, func(i, j int) bool {
		if leaks[i].File != leaks[j].File {
			return leaks[i].File < leaks[j].File
		}
		return leaks[i].Secret < leaks[j].Secret
	})
	return leaks, err
}
