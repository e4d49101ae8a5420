package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/elf"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string // substrings
		noStdout   bool
		noStderr   bool
		jsonStdout bool
	}{
		{name: "no args", args: nil, code: 2, stderr: []string{"Usage:", "vigil run"}, noStdout: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"Usage:", "vigil run", "vigil objects", "vigil version"}, noStderr: true},
		{name: "-h", args: []string{"-h"}, code: 0, stdout: []string{"Usage:"}, noStderr: true},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: []string{"Usage:"}, noStderr: true},
		{name: "bogus", args: []string{"bogus"}, code: 2, stderr: []string{`unknown command "bogus"`, "Usage:"}, noStdout: true},
		{name: "version", args: []string{"version"}, code: 0, jsonStdout: true, noStderr: true},
		{name: "--version", args: []string{"--version"}, code: 0, jsonStdout: true, noStderr: true},
		{name: "run bad flag", args: []string{"run", "-nosuchflag"}, code: 2, stderr: []string{"nosuchflag"}, noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, &stdout, &stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, &stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr does not contain %q:\n%s", s, &stderr)
				}
			}
			if tt.noStdout && stdout.Len() != 0 {
				t.Errorf("stdout not empty: %s", &stdout)
			}
			if tt.noStderr && stderr.Len() != 0 {
				t.Errorf("stderr not empty: %s", &stderr)
			}
			if tt.jsonStdout {
				checkVersionJSON(t, stdout.Bytes())
			}
		})
	}
}

func checkVersionJSON(t *testing.T, b []byte) {
	t.Helper()
	var v struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
		Date    string `json:"date"`
		Objects []struct {
			Name   string `json:"name"`
			File   string `json:"file"`
			Hooks  string `json:"hooks"`
			SHA256 string `json:"sha256"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("version output is not JSON: %v\n%s", err, b)
	}
	if v.Version != version || v.Commit != commit || v.Date != date {
		t.Errorf("version %q commit %q date %q, want %q %q %q", v.Version, v.Commit, v.Date, version, commit, date)
	}
	var names []string
	for _, o := range v.Objects {
		names = append(names, o.Name)
		if o.File == "" || o.Hooks == "" || len(o.SHA256) != 64 {
			t.Errorf("object %s incomplete: %+v", o.Name, o)
		}
	}
	// Every embedded object, in the manifest's order (pkg/loader's
	// TestManifestInStep holds the manifest to bpf/matrix).
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range man.Objects {
		want = append(want, o.Name)
	}
	if len(want) == 0 || !reflect.DeepEqual(names, want) {
		t.Errorf("objects %q, want the embedded %q", names, want)
	}
}

func TestScanExitCodes(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if err := os.WriteFile(pw, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vigil.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[agent]\nstate_dir = %q\n[[watch]]\npath = %q\nkind = \"passwd\"\n",
		filepath.Join(dir, "state"), pw)), 0o600)
	scanRun := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"scan", "-config", cfg}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := scanRun(); code != 0 || !strings.Contains(out, "baseline recorded") {
		t.Fatalf("first scan: %d %s", code, out)
	}
	if code, out := scanRun(); code != 0 {
		t.Fatalf("unchanged: %d %s", code, out)
	}
	os.WriteFile(pw, []byte("root:x:0:0:root:/root:/bin/sh\nbob:x:0:0::/:/bin/sh\n"), 0o644)
	code, out := scanRun("-json")
	if code != 1 {
		t.Fatalf("changed: exit %d, want 1: %s", code, out)
	}
	var f struct {
		Path    string `json:"path"`
		Action  string `json:"action"`
		Changes []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &f); err != nil {
		t.Fatalf("json finding: %v: %s", err, out)
	}
	if f.Path != pw || f.Action != "modified" || len(f.Changes) == 0 || f.Changes[0].Type != "user-added" || f.Changes[0].Name != "bob" {
		t.Errorf("finding %+v", f)
	}
	if code, _ := scanRun(); code != 1 {
		t.Errorf("without -update the change is still there: exit %d, want 1", code)
	}
	if code, _ := scanRun("-update"); code != 1 {
		t.Errorf("-update still reports: exit %d, want 1", code)
	}
	if code, out := scanRun(); code != 0 {
		t.Errorf("after -update: exit %d, want 0: %s", code, out)
	}
	os.WriteFile(cfg, []byte("[[watch]]\npath = \"relative\"\n"), 0o600)
	if code, out := scanRun(); code != 2 || !strings.Contains(out, "must be absolute") {
		t.Errorf("bad config: exit %d, want 2: %s", code, out)
	}
}
