//go:build privileged

package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// expectedTool copies the shell's executable under root/tools (the
// harness's [[expect]] rule "expected-tool" names that directory) and
// returns the command line that runs a script with it.
func expectedTool(t *testing.T) []string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(sh)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	// busybox runs the applet its name says, or, named busybox*, its
	// first argument.
	name, args := "expected-sh", []string{"-c"}
	if strings.HasPrefix(filepath.Base(real), "busybox") {
		name, args = "busybox-expected", []string{"sh", "-c"}
	}
	p := filepath.Join(root, "tools", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return append([]string{p}, args...)
}

// TestExpectedChange: a change that the harness's [[expect]] rule matches
// (its executable, below its path) is reported as usual, with the rule's
// name and one step lower severity (event.severity 21); the same tool
// outside the rule's path, and another tool inside it, are not expected.
func TestExpectedChange(t *testing.T) {
	needAgent(t)
	tool := expectedTool(t)
	dir := filepath.Join(root, "srv/tree/expected")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(script string) {
		t.Helper()
		cmd := exec.Command(tool[0], append(tool[1:], script)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v %q: %v: %s", tool, script, err, out)
		}
	}
	for _, c := range []struct {
		name     string
		path     string
		write    func(p string)
		expected bool
	}{
		{"the tool in the rule's path", filepath.Join(dir, "by-tool.txt"), func(p string) { run("echo x > '" + p + "'") }, true},
		{"the tool outside it", filepath.Join(root, "srv/tree", "tool-outside.txt"), func(p string) { run("echo x > '" + p + "'") }, false},
		{"another tool in it", filepath.Join(dir, "by-sh.txt"), func(p string) { sh(t, "echo x > '"+p+"'") }, false},
	} {
		mark := recs.mark()
		c.write(c.path)
		r := recs.wait(t, mark, c.name, forPath(c.path, "created"))
		rule, sev := r.s("vigil.expected.rule"), r.get("event.severity")
		if c.expected {
			if rule != "expected-tool" || sev != float64(21) || !strings.Contains(r.s("vigil.expected.source"), "agent_test.toml:") {
				t.Errorf("%s: rule %q severity %v, want expected-tool and 21: %s", c.name, rule, sev, r)
			}
			if r.s("process.executable") != tool[0] {
				t.Errorf("%s: process.executable %q, want %q", c.name, r.s("process.executable"), tool[0])
			}
		} else if r.get("vigil.expected") != nil || sev != nil {
			t.Errorf("%s: marked expected (severity %v): %s", c.name, sev, r)
		}
		if r.s("event.kind") != "event" {
			t.Errorf("%s: event.kind %q, want event", c.name, r.s("event.kind"))
		}
	}
}
