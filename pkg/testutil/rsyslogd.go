package testutil

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// StartRsyslogd starts a real rsyslogd (bin) in the foreground on conf, with
// its pid file at pidfile and its output appended to logPath; it dies with
// the test process. exited is closed when it ends.
func StartRsyslogd(t testing.TB, bin, conf, pidfile, logPath string) (cmd *exec.Cmd, exited chan struct{}) {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd = exec.Command(bin, "-n", "-f", conf, "-i", pidfile)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting rsyslogd: %v", err)
	}
	exited = make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	return cmd, exited
}
