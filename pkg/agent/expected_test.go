//go:build privileged

package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
)

// expectedTool copies the shell's executable into dir/tools (the
// harness's [[expect]] rule "expected-tool" names root/tools) and returns
// the command line that runs a script with it.
func expectedTool(t *testing.T, dir string) []string {
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
	p := filepath.Join(dir, "tools", name)
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
	tool := expectedTool(t, root)
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

// TestExpectReload: [[expect]] rules apply by a reload; a malformed rule is
// refused with its key and line and the running rules stay; a rule that
// matches everything is applied with a warning naming its line.
func TestExpectReload(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	tool := expectedTool(t, dir)
	cfgPath := filepath.Join(dir, "vigil.toml")
	base := fmt.Sprintf(`[agent]
state_dir = %q
[output]
stdout = false
[[watch]]
path = %q
recursive = true
`, filepath.Join(dir, "state"), tree)
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h := agent.NewHandle()
	r, stop := startAgent(t, agent.Options{Config: cfg, Handle: h,
		LoadConfig: func() (*config.Config, error) { return config.Load(cfgPath) }})
	defer stop()
	n := 0
	// change writes a new file with the tool or with sh and returns the
	// rule its record names.
	change := func(withTool bool) string {
		t.Helper()
		n++
		p := filepath.Join(tree, fmt.Sprintf("f%d", n))
		mark := r.mark()
		if withTool {
			if out, err := exec.Command(tool[0], append(tool[1:], "echo x > '"+p+"'")...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		} else {
			sh(t, "echo x > '"+p+"'")
		}
		return r.wait(t, mark, "created", forPath(p, "created")).s("vigil.expected.rule")
	}
	if got := change(true); got != "" {
		t.Fatalf("no rules yet, marked %q", got)
	}
	toolRule := fmt.Sprintf("[[expect]]\nname = \"tool\"\nexecutable = %q\n", tool[0])
	write(base + toolRule)
	if res, err := h.Reload(context.Background()); err != nil || !res.OK || len(res.Warnings) > 0 {
		t.Fatalf("reload with a rule: %+v %v", res, err)
	}
	if got := change(true); got != "tool" {
		t.Errorf("after the reload: marked %q, want tool", got)
	}
	// Line 11 is the malformed rule's window.
	write(base + toolRule + "window = \"Caturday 01:00-02:00\"\n")
	res, err := h.Reload(context.Background())
	if err != nil || res.OK || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "vigil.toml:11: expect.0.window: ") {
		t.Fatalf("reload with a malformed rule: %+v %v", res, err)
	}
	if got := change(true); got != "tool" {
		t.Errorf("after a refused reload: marked %q, want tool (the running rules)", got)
	}
	if got := change(false); got != "" {
		t.Errorf("sh after a refused reload: marked %q", got)
	}
	write(base + "[[expect]]\nname = \"everything\"\n")
	res, err = h.Reload(context.Background())
	if err != nil || !res.OK || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "vigil.toml:8: expect.0: rule \"everything\" has no matcher") {
		t.Fatalf("reload with a rule that matches everything: %+v %v", res, err)
	}
	if got := change(false); got != "everything" {
		t.Errorf("sh after the warned reload: marked %q, want everything", got)
	}
	rec := r.wait(t, 0, "config-reloaded with the warning", func(x rec) bool {
		return x.s("event.action") == "config-reloaded" && strings.Contains(fmt.Sprint(x.get("vigil.reload.warnings")), "everything")
	})
	if !strings.Contains(fmt.Sprint(rec.get("vigil.reload.applied")), "expect") {
		t.Errorf("config-reloaded does not say expect was applied: %s", rec)
	}
}
