//go:build privileged

package output_test

// The syslog sink against a real receiver: the test runs its own rsyslogd
// (Debian packages rsyslog and rsyslog-gnutls, installed by scripts/deps.sh)
// on free ports of 127.0.0.1, with a private work directory and no
// imuxsock/imklog, so the system's /dev/log and kernel log are untouched.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

const (
	rsFacility = 10 // authpriv: PRI 86
	rsHost     = "test host"
	rsApp      = "vigil test"
)

// rsyslog is one rsyslogd run by a test.
type rsyslog struct {
	t             *testing.T
	bin, dir      string
	conf, pidfile string
	stderr        string
	ca            string // the CA that signed the TLS listener's certificate
	ports         map[string]int
	cmd           *exec.Cmd
	exited        chan struct{}
}

var transports = []string{"udp", "tcp", "tls"}

func findRsyslogd(t *testing.T) string {
	t.Helper()
	testutil.HostOnly(t, "needs rsyslog")
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		t.Fatal("rsyslogd is not installed: run scripts/deps.sh (installs rsyslog and rsyslog-gnutls)")
	}
	gtls, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	more, _ := filepath.Glob("/usr/lib/rsyslog/lmnsd_gtls.so")
	if len(gtls)+len(more) == 0 {
		t.Fatal("rsyslog's TLS driver (lmnsd_gtls.so) is not installed: run scripts/deps.sh (installs rsyslog-gnutls)")
	}
	return bin
}

// startRsyslog starts rsyslogd listening on udp, tcp and tls; it is stopped
// when the test ends.
func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	r := &rsyslog{t: t, bin: findRsyslogd(t), dir: t.TempDir()}
	r.ca = writeCerts(t, r.dir)
	r.ports = freePorts(t)
	r.conf = filepath.Join(r.dir, "rsyslog.conf")
	r.pidfile = filepath.Join(r.dir, "rsyslogd.pid")
	r.stderr = filepath.Join(r.dir, "rsyslogd.log")
	work := filepath.Join(r.dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	var c strings.Builder
	fmt.Fprintf(&c, `global(workDirectory=%q maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
template(name="msg" type="string" string="%%msg%%\n")
template(name="hdr" type="string" string="%%pri%% %%protocol-version%% %%hostname%% %%app-name%% %%procid%% %%msgid%%\n")
input(type="imudp" address="127.0.0.1" port="%d" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"
      streamDriver.CAFile=%q streamDriver.CertFile=%q streamDriver.KeyFile=%q)
`, work, r.ports["udp"], r.ports["tcp"], r.ports["tls"],
		r.ca, filepath.Join(r.dir, "server.pem"), filepath.Join(r.dir, "server.key"))
	for _, tr := range transports {
		fmt.Fprintf(&c, "ruleset(name=%q) {\n\taction(type=\"omfile\" file=%q template=\"msg\")\n\taction(type=\"omfile\" file=%q template=\"hdr\")\n}\n",
			tr, r.msgFile(tr), r.hdrFile(tr))
	}
	if err := os.WriteFile(r.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			conf, _ := os.ReadFile(r.conf)
			log, _ := os.ReadFile(r.stderr)
			t.Logf("rsyslog.conf:\n%s\nrsyslogd output:\n%s", conf, log)
		}
	})
	return r
}

func (r *rsyslog) msgFile(tr string) string { return filepath.Join(r.dir, tr+".msg") }
func (r *rsyslog) hdrFile(tr string) string { return filepath.Join(r.dir, tr+".hdr") }

func (r *rsyslog) address(tr string) string {
	if tr == "tls" {
		return fmt.Sprintf("tls://localhost:%d", r.ports[tr]) // the certificate's name
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", tr, r.ports[tr])
}

func (r *rsyslog) start() {
	r.t.Helper()
	os.Remove(r.pidfile)
	r.cmd, r.exited = testutil.StartRsyslogd(r.t, r.bin, r.conf, r.pidfile, r.stderr)

	deadline := time.Now().Add(10 * time.Second)
	for {
		missing := r.notListening()
		if len(missing) == 0 {
			return
		}
		select {
		case <-r.exited:
			st := r.cmd.ProcessState
			r.cmd = nil
			r.t.Fatalf("rsyslogd exited at start (%v)", st)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd is not listening on %v after 10s", missing)
		}
	}
}

// stop ends rsyslogd (SIGTERM, then SIGKILL) and waits for it.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.t.Errorf("rsyslogd did not stop on SIGTERM in 10s: killing it")
		r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// notListening lists the transports whose socket rsyslogd has not bound
// yet, from /proc/net (probing the ports would send it messages).
func (r *rsyslog) notListening() []string {
	bound := func(file, state string, port int) bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		want := fmt.Sprintf("0100007F:%04X", port)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && f[1] == want && f[3] == state {
				return true
			}
		}
		return false
	}
	var missing []string
	if !bound("/proc/net/udp", "07", r.ports["udp"]) {
		missing = append(missing, "udp")
	}
	for _, tr := range []string{"tcp", "tls"} {
		if !bound("/proc/net/tcp", "0A", r.ports[tr]) {
			missing = append(missing, tr)
		}
	}
	return missing
}

// freePorts picks distinct free ports of 127.0.0.1.
func freePorts(t *testing.T) map[string]int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ports := map[string]int{"udp": pc.LocalAddr().(*net.UDPAddr).Port}
	for _, tr := range []string{"tcp", "tls"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[tr] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// writeCerts writes a self-signed CA and a server certificate it signed
// (localhost, 127.0.0.1) to dir; it returns the CA file.
func writeCerts(t *testing.T, dir string) string {
	t.Helper()
	writePEM := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM("server.pem", "CERTIFICATE", der)
	writePEM("server.key", "EC PRIVATE KEY", keyDER)
	return writePEM("ca.pem", "CERTIFICATE", caDER)
}

// makeRecords returns records as the agent writes them (zerolog, one JSON
// object per line), numbered by seq from first.
func makeRecords(first int, long bool) []string {
	var buf bytes.Buffer
	log := zerolog.New(&buf).With().Timestamp().Logger()
	seq := first
	next := func() *zerolog.Event { e := log.Info().Int("seq", seq); seq++; return e }
	next().Str("path", "/etc/passwd").Str("action", "modified").Msg("file changed")
	next().Str("path", "/srv/ünïcödé/日本語/файл ✓ 🚀").Str("user", "José").Msg("")
	next().Str("diff", `he said "hi" \ 'there'`+"\t{braces} [x] 12 <13>1 - - \"\"").
		Str("ctl", "nul\x00 bell\x07 esc\x1b del\x7f").Msg(`quote " back \`)
	if long {
		var d strings.Builder
		for i := 0; d.Len() < 8600; i++ {
			fmt.Fprintf(&d, "-user%d:x:%d:%d:\"Ünïcode, Quote\":/home/u%d:/bin/bash\n", i, 1000+i, 1000+i, i)
		}
		next().Str("path", "/etc/passwd").Str("diff", d.String()).Msg("long")
	}
	return strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n")+"\n", "\n")[:seq-first]
}

func seqOf(t *testing.T, line string) int {
	t.Helper()
	var v struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal([]byte(line), &v); err != nil || v.Seq == nil {
		t.Fatalf("received line is not a record (%v): %q", err, line)
	}
	return *v.Seq
}

// waitRecords waits until the receiver has written every record of want
// (by seq) to file, and returns what it received by seq.
func waitRecords(t *testing.T, file string, want []int) map[int]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		got := map[int]string{}
		lines := strings.SplitAfter(string(b), "\n")
		for _, l := range lines[:len(lines)-1] { // only whole lines
			l = strings.TrimSuffix(l, "\n")
			s := seqOf(t, l)
			if _, dup := got[s]; dup {
				t.Fatalf("%s: record %d received twice", filepath.Base(file), s)
			}
			got[s] = l
		}
		var missing []int
		for _, s := range want {
			if _, ok := got[s]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: records %v not received in 10s (received %d lines)", filepath.Base(file), missing, len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkRecord(t *testing.T, tr string, sent, got string) {
	t.Helper()
	want := strings.TrimSuffix(sent, "\n")
	if got != want {
		t.Errorf("%s: record changed in transit\n got  %.300q (%d bytes)\n want %.300q (%d bytes)", tr, got, len(got), want, len(want))
		return
	}
	var a, b map[string]any
	if err := json.Unmarshal([]byte(got), &a); err != nil {
		t.Errorf("%s: received %.200q: %v", tr, got, err)
		return
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("sent record %.200q: %v", want, err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s: received %v, sent %v", tr, a, b)
	}
}

func newRsyslogSink(t *testing.T, r *rsyslog, tr string) *output.Syslog {
	t.Helper()
	s, err := output.NewSyslog(output.SyslogOptions{Address: r.address(tr), Facility: rsFacility,
		HostName: rsHost, AppName: rsApp, CAFile: r.ca})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRsyslogReceivesRecordsWhole(t *testing.T) {
	r := startRsyslog(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			// UDP: one datagram per message, which may be truncated on
			// the way; long records are for the stream transports.
			recs := makeRecords(0, tr != "udp")
			if tr != "udp" && len(recs[len(recs)-1]) <= 8192 {
				t.Fatalf("the long record has %d bytes, want more than rsyslog's default 8k", len(recs[len(recs)-1]))
			}
			s := newRsyslogSink(t, r, tr)
			var seqs []int
			for i, rec := range recs {
				write(t, s, rec)
				seqs = append(seqs, i)
			}
			got := waitRecords(t, r.msgFile(tr), seqs)
			if len(got) != len(recs) {
				t.Errorf("received %d records, sent %d", len(got), len(recs))
			}
			for i, rec := range recs {
				checkRecord(t, tr, rec, got[i])
			}
			// rsyslog parsed the RFC 5424 header: PRI, version, names, PROCID, MSGID.
			hdr, err := os.ReadFile(r.hdrFile(tr))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%d 1 %s %s %d -", rsFacility*8+6, strings.ReplaceAll(rsHost, " ", "_"),
				strings.ReplaceAll(rsApp, " ", "_"), os.Getpid())
			lines := strings.Split(strings.TrimSuffix(string(hdr), "\n"), "\n")
			if len(lines) != len(recs) {
				t.Errorf("%d header lines, want %d", len(lines), len(recs))
			}
			for _, l := range lines {
				if l != want {
					t.Errorf("header as rsyslog parsed it: %q, want %q", l, want)
				}
			}
		})
	}
}

// rsyslogd restarts mid-stream: the sink reconnects, and a record whose
// Write returned nil is not lost on the way. (UDP cannot tell: a datagram
// sent while the receiver is down is lost without an error.)
func TestRsyslogRestart(t *testing.T) {
	testutil.HostOnly(t, "needs rsyslog")
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			r := startRsyslog(t)
			s := newRsyslogSink(t, r, tr)
			seq := 0
			var delivered []int // Write returned nil while rsyslogd ran
			sent := map[int]string{}
			send := func(up bool) error {
				rec := makeRecords(seq-seq%3, false)[seq%3] // the three kinds in turn
				sent[seq] = rec
				_, err := s.Write([]byte(rec))
				if err == nil && (up || tr != "udp") {
					delivered = append(delivered, seq)
				}
				seq++
				return err
			}
			// until a few Writes succeed, within a few seconds
			reconnect := func(what string) {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				ok, fails := 0, 0
				for ok < 3 {
					if err := send(true); err != nil {
						fails++
						if time.Now().After(deadline) {
							t.Fatalf("%s: Write still fails after 5s (%d failures): %v", what, fails, err)
						}
						time.Sleep(100 * time.Millisecond)
						continue
					}
					ok++
				}
				t.Logf("%s: %d failed Writes before reconnecting", what, fails)
			}

			for i := 0; i < 3; i++ {
				if err := send(true); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			waitRecords(t, r.msgFile(tr), delivered)

			// Restarted with records written while it is down.
			r.stop()
			downErrs := 0
			for i := 0; i < 3; i++ {
				if send(false) != nil {
					downErrs++
				}
			}
			if tr != "udp" && downErrs == 0 {
				t.Errorf("3 Writes to a stopped rsyslogd over %s all succeeded", tr)
			}
			r.start()
			reconnect("restart while writing")
			waitRecords(t, r.msgFile(tr), delivered)

			// Restarted while the sink is idle: the first record after
			// it must not go to the dead connection.
			r.stop()
			r.start()
			reconnect("restart while idle")
			got := waitRecords(t, r.msgFile(tr), delivered)
			for _, q := range delivered {
				checkRecord(t, tr, sent[q], got[q])
			}
		})
	}
}
