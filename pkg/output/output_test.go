package output_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-fim/vigil/pkg/output"
)

// withUmask runs the rest of the test under mask (the umask is per
// process: these tests do not run in parallel).
func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, w interface{ Write([]byte) (int, error) }, rec string) {
	t.Helper()
	n, err := w.Write([]byte(rec))
	if err != nil || n != len(rec) {
		t.Fatalf("Write(%q) = %d, %v; want %d, nil", rec, n, err, len(rec))
	}
}

func openFile(t *testing.T, path string) *output.File {
	t.Helper()
	f, err := output.OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFileCreatedPrivate(t *testing.T) {
	for _, mask := range []int{0, 0o022} {
		withUmask(t, mask)
		path := filepath.Join(t.TempDir(), "records.json")
		f := openFile(t, path)
		if m := mode(t, path); m != 0o600 {
			t.Errorf("umask %03o: new file has mode %03o, want 600", mask, m)
		}
		write(t, f, `{"a":1}`+"\n")
		if got := readFile(t, path); got != `{"a":1}`+"\n" {
			t.Errorf("umask %03o: file holds %q", mask, got)
		}
		if f.Name() != "file:"+path {
			t.Errorf("Name() = %q", f.Name())
		}
	}
}

func TestFileExistingModeTightened(t *testing.T) {
	withUmask(t, 0)
	path := filepath.Join(t.TempDir(), "records.json")
	if err := os.WriteFile(path, []byte(`{"old":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f := openFile(t, path)
	if m := mode(t, path); m != 0o600 {
		t.Errorf("existing 644 file has mode %03o after open, want 600", m)
	}
	write(t, f, `{"new":2}`+"\n")
	// Append, never truncate.
	if got, want := readFile(t, path), `{"old":1}`+"\n"+`{"new":2}`+"\n"; got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
	// Reopen tightens a mode loosened in the meantime too.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("mode %03o after Reopen, want 600", m)
	}
}

// logrotate without copytruncate: the file is renamed, records still land
// in it until SIGHUP (Reopen), then in a new file at the path.
func TestFileReopenAfterRotate(t *testing.T) {
	withUmask(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "records.json")
	rotated := path + ".1"
	f := openFile(t, path)
	write(t, f, `{"n":1}`+"\n")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	write(t, f, `{"n":2}`+"\n") // between the rename and the SIGHUP
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a write before Reopen recreated the path: %v", err)
	}
	if err := f.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	write(t, f, `{"n":3}`+"\n")
	if got, want := readFile(t, rotated), `{"n":1}`+"\n"+`{"n":2}`+"\n"; got != want {
		t.Errorf("rotated file holds %q, want %q", got, want)
	}
	if got, want := readFile(t, path), `{"n":3}`+"\n"; got != want {
		t.Errorf("new file holds %q, want %q", got, want)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("new file has mode %03o, want 600", m)
	}
}

// A Reopen that fails (the directory is gone) keeps writing to the file
// that was open: no record is lost for want of a path.
func TestFileReopenFailureKeepsOldFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "records.json")
	f := openFile(t, path)
	write(t, f, `{"n":1}`+"\n")
	moved := filepath.Join(t.TempDir(), "moved.json")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen with the directory removed succeeded")
	}
	write(t, f, `{"n":2}`+"\n")
	if got, want := readFile(t, moved), `{"n":1}`+"\n"+`{"n":2}`+"\n"; got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
}

func TestFileCloseThenWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	f, err := output.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, `{"n":1}`+"\n")
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := f.Write([]byte(`{"n":2}` + "\n")); err == nil {
		t.Errorf("Write after Close = %d, nil; want an error", n)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got, want := readFile(t, path), `{"n":1}`+"\n"; got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
}

func TestOpenFileError(t *testing.T) {
	if _, err := output.OpenFile(filepath.Join(t.TempDir(), "missing", "records.json")); err == nil {
		t.Error("OpenFile in a missing directory succeeded")
	}
}

// fakeSink records what reaches it; fail makes every call fail.
type fakeSink struct {
	name            string
	fail            bool
	writes          []string
	reopens, closes int
}

var errFake = errors.New("fake failure")

func (s *fakeSink) Write(p []byte) (int, error) {
	if s.fail {
		return 0, errFake
	}
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *fakeSink) Reopen() error {
	s.reopens++
	if s.fail {
		return errFake
	}
	return nil
}

func (s *fakeSink) Close() error {
	s.closes++
	if s.fail {
		return errFake
	}
	return nil
}

func (s *fakeSink) Name() string { return s.name }

func TestFanout(t *testing.T) {
	a := &fakeSink{name: "a"}
	bad := &fakeSink{name: "bad", fail: true}
	b := &fakeSink{name: "b"}
	f := output.NewFanout(a, bad, b)

	recs := []string{`{"n":1}` + "\n", `{"n":2}` + "\n"}
	for _, r := range recs {
		n, err := f.Write([]byte(r))
		if n != len(r) {
			t.Errorf("Write = %d, want %d", n, len(r))
		}
		if err == nil || !errors.Is(err, errFake) || !strings.Contains(err.Error(), "bad") {
			t.Errorf("Write error = %v, want the failure of sink bad", err)
		}
	}
	for _, s := range []*fakeSink{a, b} {
		if strings.Join(s.writes, "") != strings.Join(recs, "") {
			t.Errorf("sink %s got %q, want %q", s.name, s.writes, recs)
		}
	}
	fails := f.Failures()
	if len(fails) != 1 || fails["bad"] != 2 {
		t.Errorf("Failures() = %v, want map[bad:2]", fails)
	}
	fails["bad"] = 100 // a copy
	if got := f.Failures()["bad"]; got != 2 {
		t.Errorf("Failures() shares its map: bad = %d after changing the copy", got)
	}

	if err := f.Reopen(); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("Reopen error = %v, want the failure of sink bad", err)
	}
	if err := f.Close(); !errors.Is(err, errFake) {
		t.Errorf("Close error = %v, want the failure of sink bad", err)
	}
	for _, s := range []*fakeSink{a, bad, b} {
		if s.reopens != 1 || s.closes != 1 {
			t.Errorf("sink %s: %d reopens, %d closes; want 1, 1", s.name, s.reopens, s.closes)
		}
	}
}

func TestFanoutAllHealthy(t *testing.T) {
	a, b := &fakeSink{name: "a"}, &fakeSink{name: "b"}
	f := output.NewFanout(a, b)
	write(t, f, `{"n":1}`+"\n")
	if err := f.Reopen(); err != nil {
		t.Errorf("Reopen: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if len(f.Failures()) != 0 {
		t.Errorf("Failures() = %v, want none", f.Failures())
	}
	if len(a.writes) != 1 || len(b.writes) != 1 {
		t.Errorf("writes: a %q, b %q", a.writes, b.writes)
	}
}

func TestFanoutWithFileAndStream(t *testing.T) {
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "records.json")
	file := openFile(t, path)
	f := output.NewFanout(output.Stream{W: &buf, Label: "stdout"}, file)
	write(t, f, `{"n":1}`+"\n")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != `{"n":1}`+"\n" || readFile(t, path) != `{"n":1}`+"\n" {
		t.Errorf("stdout %q, file %q", buf.String(), readFile(t, path))
	}
	// The file is closed now: the stream still gets records.
	if _, err := f.Write([]byte(`{"n":2}` + "\n")); err == nil {
		t.Error("Write to a closed file sink did not fail")
	}
	if buf.String() != `{"n":1}`+"\n"+`{"n":2}`+"\n" {
		t.Errorf("stdout %q", buf.String())
	}
	if got := f.Failures()["file:"+path]; got != 1 {
		t.Errorf("Failures() = %v", f.Failures())
	}
}
