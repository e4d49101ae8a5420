package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPermissions(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "vigil.toml")
	dropDir := filepath.Join(dir, "conf.d")
	drop := filepath.Join(dropDir, "10-x.toml")
	if err := os.Mkdir(dropDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{main, drop} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srcs := []string{main, drop}
	if err := CheckPermissions(append([]string{"(embedded default)"}, srcs...)); err != nil {
		t.Fatalf("safe files refused: %v", err)
	}
	// Each of these alone must be refused, naming the path.
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{main, 0o664}, {main, 0o646}, {drop, 0o666}, {dropDir, 0o777}, {dir, 0o775}} {
		old, _ := os.Stat(c.path)
		if err := os.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckPermissions(srcs)
		os.Chmod(c.path, old.Mode().Perm())
		if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), c.path+" has mode") {
			t.Errorf("%s %04o: %v", c.path, c.mode, err)
		}
	}
	// conf.d is checked even when it holds no drop-in yet.
	if err := os.Remove(drop); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dropDir, 0o777)
	if err := CheckPermissions([]string{main}); !errors.Is(err, ErrInsecure) {
		t.Errorf("empty world-writable conf.d accepted: %v", err)
	}
	os.Chmod(dropDir, 0o755)
	if os.Geteuid() == 0 {
		if err := os.Chown(main, 12345, 0); err != nil {
			t.Fatal(err)
		}
		err := CheckPermissions([]string{main})
		if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "owned by uid 12345") {
			t.Errorf("file owned by another user: %v", err)
		}
	}
}
