package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// TestScanSecretsFindsALeak: the audit fails on a planted leak (in a
// record line, and in the middle of a binary store file) and passes on
// clean output; a leak is named by the secret's index, not its text.
func TestScanSecretsFindsALeak(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "records-1.log"), []byte(`{"event":{"action":"replaced"},"vigil":{"changes":[]}}`+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "store-1.state"), []byte("\x00\x01bolt\x00{\"kind\":\"shadow\",\"fp\":\"0123abcd\"}\x00"), 0o600)
	if leaks, err := ScanSecrets(dir, Secrets); err != nil || len(leaks) != 0 {
		t.Fatalf("clean collection: %v, %v", leaks, err)
	}
	os.WriteFile(filepath.Join(dir, "records-2.log"), []byte(`{"vigil":{"changes":[{"text":"+password = `+HostilePassword+`"}]}}`+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "store-2.state"), []byte("\x00\x02bolt\x00root:$6$x$"+Secrets[0]+":1::\x00"), 0o600)
	leaks, err := ScanSecrets(dir, Secrets)
	if err != nil {
		t.Fatal(err)
	}
	want := []Leak{{"records-2.log", 5}, {"store-2.state", 0}}
	if len(leaks) != len(want) || leaks[0] != want[0] || leaks[1] != want[1] {
		t.Fatalf("leaks %v, want %v", leaks, want)
	}
	if s := leaks[0].String(); s != "records-2.log holds secret #5" {
		t.Errorf("a leak prints as %q", s)
	}
}

// TestAuditWriterAndTree: the collection gets every byte written and a copy
// of every state file.
func TestAuditWriterAndTree(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(AuditEnv, dir)
	w := AuditWriter("records")
	w.Write([]byte("one\n"))
	w.Write([]byte("two\n"))
	state := t.TempDir()
	os.MkdirAll(filepath.Join(state, "sub"), 0o700)
	os.WriteFile(filepath.Join(state, "sub", "state.db"), []byte("DB"), 0o600)
	if err := AuditTree("agent", state); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	got := map[string]string{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		got[filepath.Ext(f)] = string(b)
	}
	if got[".log"] != "one\ntwo\n" || got[".state"] != "DB" || len(files) != 2 {
		t.Errorf("collection %v", got)
	}
}
