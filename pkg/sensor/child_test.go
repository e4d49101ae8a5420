//go:build privileged

package sensor_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a child actor, so that a record's
// "who" fields (login uid, cgroup, mount namespace, uids, root) can differ
// from the test runner's. TestMain hands over to childMain when
// childEnv is set; the child never loads a sensor.
const childEnv = "VIGIL_TEST_CHILD"

// childMain runs the steps given as arguments, in order, on one locked OS
// thread (unshare and loginuid are per thread), and returns the exit code.
// It reports on stdout, one "key value" line per fact:
//
//	loginuid=N          write N to /proc/thread-self/loginuid
//	cgroup=DIR          move this process into cgroup2 directory DIR
//	unshare-mnt         enter a new mount namespace; prints "mntns INODE"
//	setresuid=R,E,S     set real, effective and saved uid
//	chroot=DIR          chroot(DIR) and chdir("/")
//	write=PATH          append a line to PATH; prints "tid TID"
//	spawn-sh=SCRIPT     run sh -c SCRIPT (its stdout is the child's); prints "sh PID"
//	rename-loop=N,TMP,DST
//	                    N times: write TMP, print "ino INODE" (of TMP), rename TMP over DST,
//	                    at once append to DST
func childMain(steps []string) int {
	runtime.LockOSThread()
	fmt.Printf("pid %d\n", os.Getpid())
	for _, step := range steps {
		if err := childStep(step); err != nil {
			fmt.Fprintf(os.Stderr, "child step %q: %v\n", step, err)
			return 1
		}
	}
	return 0
}

func childStep(step string) error {
	op, arg, _ := strings.Cut(step, "=")
	switch op {
	case "loginuid":
		return os.WriteFile("/proc/thread-self/loginuid", []byte(arg), 0)
	case "cgroup":
		return os.WriteFile(arg+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0)
	case "unshare-mnt":
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/mnt", &st); err != nil {
			return err
		}
		fmt.Printf("mntns %d\n", st.Ino)
		return nil
	case "setresuid":
		var ids [3]int
		parts := strings.Split(arg, ",")
		if len(parts) != 3 {
			return fmt.Errorf("want R,E,S")
		}
		for i, s := range parts {
			v, err := strconv.Atoi(s)
			if err != nil {
				return err
			}
			ids[i] = v
		}
		return unix.Setresuid(ids[0], ids[1], ids[2])
	case "chroot":
		if err := unix.Chroot(arg); err != nil {
			return err
		}
		return unix.Chdir("/")
	case "write":
		fmt.Printf("tid %d\n", unix.Gettid())
		return childAppend(arg)
	case "spawn-sh":
		cmd := exec.Command("sh", "-c", arg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return err
		}
		fmt.Printf("sh %d\n", cmd.Process.Pid)
		return nil
	case "rename-loop":
		parts := strings.Split(arg, ",")
		if len(parts) != 3 {
			return fmt.Errorf("want N,TMP,DST")
		}
		n, err := strconv.Atoi(parts[0])
		if err != nil {
			return err
		}
		tmp, dst := parts[1], parts[2]
		for i := 0; i < n; i++ {
			if err := os.WriteFile(tmp, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Stat(tmp, &st); err != nil {
				return err
			}
			if err := unix.Rename(tmp, dst); err != nil {
				return err
			}
			if err := childAppend(dst); err != nil {
				return err
			}
			fmt.Printf("ino %d\n", st.Ino)
		}
		return nil
	}
	return fmt.Errorf("unknown step")
}

func childAppend(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("eve:x:0:0::/:/bin/sh\n")); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// actorChildOut is what a child reported: its pid and its "key value" lines.
type actorChildOut struct {
	pid   int
	facts map[string][]string
}

func (c actorChildOut) one(t *testing.T, key string) uint64 {
	t.Helper()
	v := c.facts[key]
	if len(v) != 1 {
		t.Fatalf("child reported %q %d times: %v", key, len(v), c.facts)
	}
	n, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		t.Fatalf("child fact %s %q: %v", key, v[0], err)
	}
	return n
}

// actorRunChild runs the test binary as a child actor with the given steps and
// waits for it; the child's failure fails the test.
func actorRunChild(t *testing.T, steps ...string) actorChildOut {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, steps...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %v: %v\nstdout: %s\nstderr: %s", steps, err, stdout.String(), stderr.String())
	}
	out := actorChildOut{pid: cmd.Process.Pid, facts: map[string][]string{}}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok {
			out.facts[k] = append(out.facts[k], v)
		}
	}
	if got := out.one(t, "pid"); got != uint64(out.pid) {
		t.Fatalf("child says pid %d, started as %d", got, out.pid)
	}
	return out
}
