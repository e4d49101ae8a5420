//go:build privileged

package output_test

// docs/operations.md's rsyslog snippets, run as written: a relay rsyslogd
// with each snippet (the SIEM's name and the paths replaced by a local
// receiver's) forwards vigil's records to the receiver of rsyslog_test.go,
// which must get every record whole, including across a log rotation.

import (
	"github.com/vigil-fim/vigil/pkg/testutil"

	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/output"
)

// docsSnippets returns the ```rsyslog blocks of docs/operations.md.
func docsSnippets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```rsyslog\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// startRelay runs rsyslogd on conf until the test ends; with a port, it
// waits until rsyslogd listens there.
func startRelay(t *testing.T, bin, dir, conf string, port int) {
	t.Helper()
	path := filepath.Join(dir, "relay.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "relay.log")
	cmd, exited := testutil.StartRsyslogd(t, bin, path, filepath.Join(dir, "relay.pid"), log)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("relay configuration:\n%s\nrelay rsyslogd output:\n%s", conf, b)
		}
	})
	// rsyslogd complains about a configuration on stderr and carries on:
	// any complaint is a broken snippet.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("relay rsyslogd exited at start (%v)", cmd.ProcessState)
		default:
		}
		ready := true
		if port != 0 {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
			}
			ready = err == nil
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay rsyslogd not listening on %d after 10s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if b, _ := os.ReadFile(log); len(strings.TrimSpace(string(b))) > 0 {
		t.Fatalf("relay rsyslogd complained about the snippet:\n%s", b)
	}
}

// bigRecord is a record larger than rsyslog's default 8 KiB message size,
// like one with a long diff.
func bigRecord(seq int) string {
	var d strings.Builder
	for i := 0; d.Len() < 40000; i++ {
		fmt.Fprintf(&d, "+app%d:x:%d:%d::/srv/app%d:/usr/sbin/nologin\\n", i, 2000+i, 2000+i, i)
	}
	return fmt.Sprintf(`{"seq":%d,"event":{"action":"modified"},"vigil":{"changes":[{"type":"lines-changed","text":"%s"}]}}`+"\n", seq, d.String())
}

func TestDocsRsyslogSnippets(t *testing.T) {
	bin := findRsyslogd(t)
	snippets := docsSnippets(t)
	if len(snippets) != 3 {
		t.Fatalf("docs/operations.md has %d rsyslog snippets, want 3 (imfile, imtcp, the imrelp relay)", len(snippets))
	}
	sink := startRsyslog(t) // the "SIEM": writes each forwarded MSG to tcp.msg
	for i, snip := range snippets {
		if strings.Contains(snip, `load="imrelp"`) {
			continue // the relay's snippet: relay_test.go runs it
		}
		name := "imtcp"
		if strings.Contains(snip, `load="imfile"`) {
			name = "imfile"
		}
		first := 1000 * (i + 1)
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			work := filepath.Join(dir, "work")
			if err := os.Mkdir(work, 0o700); err != nil {
				t.Fatal(err)
			}
			logFile := filepath.Join(dir, "vigil.json")
			inPort := freePorts(t)["tcp"]
			conf := snip
			repl := map[string]string{
				`target="siem.example.net" port="514"`: fmt.Sprintf(`target="127.0.0.1" port="%d"`, sink.ports["tcp"]),
			}
			if name == "imfile" {
				repl[`"/var/log/vigil/vigil.json"`] = fmt.Sprintf("%q", logFile)
			} else {
				repl[`port="5514"`] = fmt.Sprintf(`port="%d"`, inPort)
			}
			for old, r := range repl {
				if strings.Count(conf, old) != 1 {
					t.Fatalf("the %s snippet no longer has exactly one %s", name, old)
				}
				conf = strings.Replace(conf, old, r, 1)
			}
			// What the doc puts in rsyslog.conf: the work directory (Debian's
			// is /var/spool/rsyslog) and the message size.
			conf = fmt.Sprintf("global(workDirectory=%q maxMessageSize=\"256k\")\n", work) + conf

			recs := makeRecords(first, true)
			recs = append(recs, bigRecord(first+len(recs)))
			var seqs []int
			for j := range recs {
				seqs = append(seqs, first+j)
			}
			if name == "imfile" {
				// The file exists before rsyslog starts, as with the agent.
				f, err := output.OpenFile(logFile)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				startRelay(t, bin, dir, conf, 0)
				half := len(recs) / 2
				for _, r := range recs[:half] {
					write(t, f, r)
				}
				waitRecords(t, sink.msgFile("tcp"), seqs[:half])
				// logrotate renames the file; a record still goes to the
				// renamed file; then SIGHUP makes vigil reopen the path.
				if err := os.Rename(logFile, logFile+".1"); err != nil {
					t.Fatal(err)
				}
				write(t, f, recs[half])
				if err := f.Reopen(); err != nil {
					t.Fatal(err)
				}
				for _, r := range recs[half+1:] {
					write(t, f, r)
				}
			} else {
				startRelay(t, bin, dir, conf, inPort)
				s, err := output.NewSyslog(output.SyslogOptions{Address: fmt.Sprintf("tcp://127.0.0.1:%d", inPort),
					Facility: 10, AppName: "vigil"})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for _, r := range recs {
					write(t, s, r)
				}
			}
			got := waitRecords(t, sink.msgFile("tcp"), seqs)
			for j, r := range recs {
				checkRecord(t, name, r, got[first+j])
			}
		})
	}
}
