package consumer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testKey is the per-host key used by the tests.
var testKey = []byte("0123456789abcdef-test-key")

func newC(t testing.TB, k Kind) Consumer {
	t.Helper()
	c, err := New(k, Options{Key: testKey})
	if err != nil {
		t.Fatalf("New(%s): %v", k, err)
	}
	return c
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parse parses content (nil-able via absent) and fails on error.
func parse(t testing.TB, c Consumer, path, content string) (State, []Problem) {
	t.Helper()
	st, probs, err := c.Parse(Input{Path: path, Content: []byte(content), Info: &FileInfo{Size: int64(len(content)), Mode: 0o100644}})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !json.Valid(st) {
		t.Fatalf("Parse returned invalid JSON: %s", st)
	}
	return st, probs
}

func parseAbsent(t testing.TB, c Consumer, path string) State {
	t.Helper()
	st, probs, err := c.Parse(Input{Path: path})
	if err != nil || len(probs) != 0 {
		t.Fatalf("Parse(absent): %v %v", probs, err)
	}
	return st
}

// diffOf parses old and new content and diffs them.
func diffOf(t testing.TB, c Consumer, path, old, cur string) []Change {
	t.Helper()
	p, _ := parse(t, c, path, old)
	s, _ := parse(t, c, path, cur)
	ch, err := c.Diff(p, s)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	return ch
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func checkChanges(t *testing.T, got, want []Change) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes differ\n got: %s\nwant: %s", js(got), js(want))
	}
}

func checkProblems(t *testing.T, got []Problem, wantLines ...int) {
	t.Helper()
	var lines []int
	for _, p := range got {
		lines = append(lines, p.Line)
	}
	if !reflect.DeepEqual(lines, wantLines) && !(len(lines) == 0 && len(wantLines) == 0) {
		t.Errorf("problem lines = %v, want %v (%s)", lines, wantLines, js(got))
	}
}

// replaceLine returns content with line n (1-based) replaced; "" deletes it.
func replaceLine(content string, n int, with string) string {
	lines := strings.SplitAfter(content, "\n")
	if with == "" {
		lines = append(lines[:n-1], lines[n:]...)
	} else {
		lines[n-1] = with + "\n"
	}
	return strings.Join(lines, "")
}

func m(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
