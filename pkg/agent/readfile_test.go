package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/testutil"
)

// TestReadFileHostile: what an attacker can put where a watched file was.
// A symlink (final or in a directory) is described, never followed; a FIFO
// is described without blocking; nothing of the link's target is read.
func TestReadFileHostile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("root:$6$salt$SECRETHASHSECRETHASH:19700::::::\n"), 0o600)
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.WriteFile(filepath.Join(dir, "real", "conf"), []byte("SECRET-THROUGH-DIR\n"), 0o600)

	link := filepath.Join(dir, "link")
	os.Symlink(secret, link)
	viaDir := filepath.Join(dir, "linkdir")
	os.Symlink(filepath.Join(dir, "real"), viaDir)
	loop := filepath.Join(dir, "loop")
	os.Symlink(loop, loop)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, path string
		symlink    bool
		mode       uint32
	}{
		{"symlink to a secret", link, true, syscall.S_IFLNK},
		{"a directory that is a symlink", filepath.Join(viaDir, "conf"), true, syscall.S_IFREG},
		{"symlink loop", loop, true, syscall.S_IFLNK},
		{"fifo", fifo, false, syscall.S_IFIFO},
	} {
		done := make(chan observed, 1)
		go func() { done <- readFile(c.path) }()
		var o observed
		select {
		case o = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: readFile blocked", c.name)
		}
		if o.in.Content != nil || o.sum != "" || o.oversize {
			t.Errorf("%s: content read: %q sum %q", c.name, o.in.Content, o.sum)
		}
		if o.symlink != c.symlink || o.in.Info == nil || o.in.Info.Mode&syscall.S_IFMT != c.mode {
			t.Errorf("%s: symlink %v info %+v, want symlink %v mode %o", c.name, o.symlink, o.in.Info, c.symlink, c.mode)
		}
	}
	if o := readFile(filepath.Join(dir, "missing")); o.in.Info != nil || o.st != nil || o.in.Content != nil {
		t.Errorf("a missing file: %+v", o)
	}
	if o := readFile(filepath.Join(dir, "real", "conf")); string(o.in.Content) != "SECRET-THROUGH-DIR\n" || o.symlink {
		t.Errorf("a plain file: %+v", o)
	}
	// An empty file is present and empty, not absent.
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if o := readFile(empty); o.in.Content == nil || len(o.in.Content) != 0 || o.sum == "" {
		t.Errorf("an empty file: %+v", o)
	}
}

// TestReadFileOversize: a file over the parse limit is hashed whole in a
// stream and not given to a consumer at all (no truncated content); one at
// the limit is read whole.
func TestReadFileOversize(t *testing.T) {
	dir := t.TempDir()
	at := filepath.Join(dir, "at")
	if err := os.WriteFile(at, []byte(strings.Repeat("x", maxRead)), 0o600); err != nil {
		t.Fatal(err)
	}
	if o := readFile(at); o.oversize || len(o.in.Content) != maxRead || o.sum != sha(t, at) {
		t.Errorf("a file of exactly the limit: oversize %v, %d bytes", o.oversize, len(o.in.Content))
	}
	over := filepath.Join(dir, "over")
	if err := os.WriteFile(over, []byte(strings.Repeat("y", maxRead+1<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	if o := readFile(over); !o.oversize || o.in.Content != nil || o.sum != sha(t, over) {
		t.Errorf("a file over the limit: oversize %v, %d bytes, hash right %v", o.oversize, len(o.in.Content), o.sum == sha(t, over))
	}
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 1 GiB of which only the ends are written (64 MiB in an
	// emulated guest, where hashing a GiB takes most of a minute: still
	// four times the read limit and eight times what the test lets the
	// read allocate).
	size := int64(testutil.Scale(1<<30, 16))
	f.WriteString("head\n")
	f.WriteAt([]byte("tail\n"), size-5)
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	o := readFile(big)
	runtime.ReadMemStats(&after)
	if !o.oversize || o.in.Content != nil || o.in.Info == nil || o.in.Info.Size != size || len(o.sum) != 64 {
		t.Fatalf("a %d-byte file: oversize %v, content %d bytes, info %+v, sum %q", size, o.oversize, len(o.in.Content), o.in.Info, o.sum)
	}
	// Streamed: reading it allocates a few buffers, not the file.
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("reading a %d-byte file allocated %d bytes", size, n)
	}
	if p := oversizeProblem(o.in.Info.Size); !strings.Contains(p.Msg, fmt.Sprintf("%d bytes", size)) {
		t.Errorf("problem %q", p.Msg)
	}
}

func sha(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}
