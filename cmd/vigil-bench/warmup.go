package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Every peer proves at start that it records a change this process makes
// (its warm-up change) before anything is measured: a peer that records
// nothing must fail the run with the reason, never be reported as fast or
// as having seen none of a burst. Each agent watches, beside what it is
// measured on, a canary file in its own directory; the warm-up rewrites it
// and waits for the peer's own report of it.

// warmupTimeout is how long a peer has to report its warm-up change.
const warmupTimeout = 30 * time.Second

// canaryPath is the warm-up file of an agent directory.
func canaryPath(dir string) string { return filepath.Join(dir, "warmup", "canary") }

// makeCanary creates the canary file (before the peer starts, so that it is
// in the peer's baseline).
func makeCanary(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte("warm-up 0\n"), 0o644)
}

// touchCanary rewrites the canary in place (open O_WRONLY|O_TRUNC, one
// write, close): a content change every peer watches for.
func touchCanary(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("warm-up change of %s: %w", path, err)
	}
	_, err = fmt.Fprintf(f, "warm-up %d at %s\n", n, time.Now().UTC().Format(time.RFC3339Nano))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("warm-up change of %s: %w", path, err)
	}
	return nil
}

// waitFor polls seen every 20 ms until it is true or timeout passes.
func waitFor(timeout time.Duration, seen func() (bool, error)) (bool, error) {
	for end := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		ok, err := seen()
		if ok || err != nil {
			return ok, err
		}
		if time.Now().After(end) {
			return false, nil
		}
	}
}

// warmupVigil rewrites the canary and waits for vigil's record of it on its
// stdout.
func (v *vigilAgent) warmup() error {
	canary := canaryPath(v.dir)
	n0 := len(v.Records())
	if err := touchCanary(canary, 1); err != nil {
		return err
	}
	ok, _ := waitFor(warmupTimeout, func() (bool, error) {
		for _, r := range v.Records()[n0:] {
			if r.File.Path == canary {
				return true, nil
			}
		}
		return false, nil
	})
	if !ok {
		return fmt.Errorf("%s recorded nothing for its warm-up change: expected a record with file.path %q on its stdout within %s of rewriting it (%d other records; its log %s: %s)",
			v.label, canary, warmupTimeout, len(v.Records())-n0, filepath.Join(v.dir, "vigil.log"), v.logTail())
	}
	return nil
}

// warmup rewrites the canary and waits for its SYSCALL event in audit.log.
func (a *auditdAgent) warmup() error {
	canary := canaryPath(a.dir)
	off := a.LogSize()
	if err := touchCanary(canary, 1); err != nil {
		return err
	}
	ok, err := waitFor(warmupTimeout, func() (bool, error) {
		n, err := a.CountKey(warmupKey, off)
		return n > 0, err
	})
	if err != nil {
		return fmt.Errorf("auditd warm-up: reading %s: %w", a.Log(), err)
	}
	if !ok {
		st, _ := auditStatus()
		rules, _ := auditRules()
		return fmt.Errorf("auditd logged nothing for its warm-up change: expected a type=SYSCALL line with key=%q (rule -w %s -p wa) in %s within %s of rewriting %s; kernel audit status: enabled=%s pid=%s lost=%s backlog=%s backlog_limit=%s; rules loaded: %s",
			warmupKey, canary, a.Log(), warmupTimeout, canary, st["enabled"], st["pid"], st["lost"], st["backlog"], st["backlog_limit"], strings.Join(rules, "; "))
	}
	return nil
}

// warmupKey is the audit key of the canary's rule.
const warmupKey = "bench-warmup"

// warmup rewrites the canary and waits for inotifywait's CLOSE_WRITE of it.
func (i *inotifyAgent) warmup() error {
	canary := canaryPath(i.dir)
	if err := touchCanary(canary, 1); err != nil {
		return err
	}
	ok, _ := waitFor(warmupTimeout, func() (bool, error) {
		i.mu.Lock()
		defer i.mu.Unlock()
		return i.canarySeen, nil
	})
	if !ok {
		return fmt.Errorf("inotifywait reported nothing for its warm-up change: expected a CLOSE_WRITE line for %s on its stdout within %s of rewriting it", canary, warmupTimeout)
	}
	return nil
}

// The kernel gives a task an audit context when it is created (fork,
// clone) only once auditing has ever been enabled since boot
// (audit_ever_enabled); a task created before that is never audited, whatever
// rules are loaded later. On a freshly booted machine where nothing had
// enabled auditing, this process (and every thread it had) predated the
// auditd it starts, so auditd logged none of the workload's system calls:
// 0 of 50,000 deletions, while its log had its own start-up and rule records.
// vigil-bench host therefore enables auditing once (and puts the flag back)
// and runs the measurements in a child process created after that.

// childEnv marks the child that measures.
const childEnv = "VIGIL_BENCH_AUDITED_CHILD"

// hostInChild makes sure auditing has been enabled since boot, then runs
// `vigil-bench host args...` in a new process and returns its outcome. ok
// is false when it did nothing (already the child, or no auditctl).
func hostInChild(args []string) (ok bool, err error) {
	if os.Getenv(childEnv) != "" {
		return false, nil
	}
	if _, err := exec.LookPath("auditctl"); err != nil {
		return false, nil
	}
	st, err := auditStatus()
	if err != nil {
		return true, err
	}
	if st["enabled"] == "0" {
		// Sets audit_ever_enabled for the rest of the boot; the flag
		// itself is put back at once.
		if err := auditctl("-e", "1"); err != nil {
			return true, err
		}
		if err := auditctl("-e", "0"); err != nil {
			return true, err
		}
		logf("auditing enabled once (and disabled again) so that the measuring process is created with an audit context")
	}
	self, err := os.Executable()
	if err != nil {
		return true, err
	}
	cmd := exec.Command(self, append([]string{"host"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), childEnv+"=1")
	// The child restores the audit state on SIGINT and SIGTERM; pass them on
	// and wait for it.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		return true, err
	}
	go func() {
		for s := range sig {
			cmd.Process.Signal(s)
		}
	}()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			os.Exit(ee.ExitCode()) // the child said why
		}
		return true, err
	}
	return true, nil
}

// settle waits until auditd has logged everything the kernel queued before
// it returns: it rewrites the canary again and waits (at most max) for that
// event, which the kernel's audit queue delivers after every event queued
// before it; then for the log to stop growing for quietFor. A log that
// merely paused (the log's size unchanged for seconds while the kernel's
// queue still held the burst's tail) no longer ends the count early.
func (a *auditdAgent) settle(max time.Duration) error {
	off := a.LogSize()
	if err := touchCanary(canaryPath(a.dir), 2); err != nil {
		return err
	}
	ok, err := waitFor(max, func() (bool, error) {
		n, err := a.CountKey(warmupKey, off)
		return n > 0, err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("auditd did not log the canary rewrite made after the workload within %s (key %q, %s)", max, warmupKey, a.Log())
	}
	a.Quiet(quietFor, max)
	return nil
}
