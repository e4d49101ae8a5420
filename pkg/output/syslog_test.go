package output_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/output"
)

func newSyslog(t *testing.T, o output.SyslogOptions) *output.Syslog {
	t.Helper()
	s, err := output.NewSyslog(o)
	if err != nil {
		t.Fatalf("NewSyslog(%+v): %v", o, err)
	}
	return s
}

// header5424 splits an RFC 5424 message with no structured data:
// <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG.
var header5424 = regexp.MustCompile(`(?s)^<([0-9]{1,3})>1 (\S+) (\S+) (\S+) (\S+) - - (.*)$`)

func TestSyslogFormat(t *testing.T) {
	// A local time with nanoseconds: the header has UTC and microseconds.
	now := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("IST", 5*3600+1800))
	const rec = `{"event":{"action":"modified"},"file":{"path":"/etc/pässwd \"x\""}}`
	for _, tc := range []struct {
		facility int
		pri      string
	}{{0, "6"}, {4, "38"}, {10, "86"}, {16, "134"}, {23, "190"}} {
		s := newSyslog(t, output.SyslogOptions{Address: "udp://127.0.0.1:514", Facility: tc.facility,
			HostName: "web 01", AppName: "vigil fim"})
		got := s.Format([]byte(rec+"\n"), now)
		m := header5424.FindSubmatch(got)
		if m == nil {
			t.Fatalf("facility %d: %q is not an RFC 5424 message", tc.facility, got)
		}
		if string(m[1]) != tc.pri {
			t.Errorf("facility %d: PRI %s, want %s (facility*8+6)", tc.facility, m[1], tc.pri)
		}
		if want := "2024-02-29T18:29:58.123456Z"; string(m[2]) != want {
			t.Errorf("TIMESTAMP %s, want %s", m[2], want)
		}
		ts, err := time.Parse(time.RFC3339Nano, string(m[2]))
		if err != nil || !ts.Equal(now.Truncate(time.Microsecond)) {
			t.Errorf("TIMESTAMP %s parses as %v, %v", m[2], ts, err)
		}
		if string(m[3]) != "web_01" || string(m[4]) != "vigil_fim" {
			t.Errorf("HOSTNAME %q APP-NAME %q, want web_01 vigil_fim", m[3], m[4])
		}
		if string(m[5]) != strconv.Itoa(os.Getpid()) {
			t.Errorf("PROCID %s, want %d", m[5], os.Getpid())
		}
		if string(m[6]) != rec {
			t.Errorf("MSG %q, want the record without its newline %q", m[6], rec)
		}
		want := "<" + tc.pri + ">1 2024-02-29T18:29:58.123456Z web_01 vigil_fim " + strconv.Itoa(os.Getpid()) + " - - " + rec
		if string(got) != want {
			t.Errorf("Format = %q\nwant     %q", got, want)
		}
	}
}

func TestSyslogFormatDetails(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newSyslog(t, output.SyslogOptions{Address: "tcp://127.0.0.1:514", HostName: "h", AppName: "a"})
	// Whole microseconds keep six digits.
	if got := s.Format([]byte("{}\n"), now); !bytes.Contains(got, []byte(" 2024-01-02T03:04:05.000000Z h a ")) {
		t.Errorf("Format = %q", got)
	}
	// A record without its newline is sent as is.
	if got := s.Format([]byte(`{"a":1}`), now); !bytes.HasSuffix(got, []byte(` - - {"a":1}`)) {
		t.Errorf("Format = %q", got)
	}
	// Format does not change the caller's record.
	rec := []byte(`{"a":1}` + "\n")
	s.Format(rec, now)
	if string(rec) != `{"a":1}`+"\n" {
		t.Errorf("record changed to %q", rec)
	}
}

func TestSyslogDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	s := newSyslog(t, output.SyslogOptions{Address: "udp://127.0.0.1:514"})
	m := header5424.FindSubmatch(s.Format([]byte("{}\n"), time.Now()))
	if m == nil {
		t.Fatal("not an RFC 5424 message")
	}
	if string(m[1]) != "6" {
		t.Errorf("PRI %s, want 6 (facility 0)", m[1])
	}
	if want := strings.ReplaceAll(host, " ", "_"); string(m[3]) != want {
		t.Errorf("HOSTNAME %q, want %q", m[3], want)
	}
	if string(m[4]) != "vigil" {
		t.Errorf("APP-NAME %q, want vigil", m[4])
	}
	if s.Name() != "syslog:udp://127.0.0.1:514" {
		t.Errorf("Name() = %q", s.Name())
	}
}

func TestNewSyslogErrors(t *testing.T) {
	dir := t.TempDir()
	noCert := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(noCert, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range []output.SyslogOptions{
		{Address: "127.0.0.1:514"},
		{Address: "http://127.0.0.1:514"},
		{Address: "tls://127.0.0.1"},
		{Address: "tls://localhost:6514", CAFile: filepath.Join(dir, "missing.pem")},
		{Address: "tls://localhost:6514", CAFile: noCert},
	} {
		if _, err := output.NewSyslog(o); err == nil {
			t.Errorf("NewSyslog(%+v) succeeded", o)
		}
	}
	for _, a := range []string{"udp://127.0.0.1:514", "tcp://[::1]:514", "tls://localhost:6514"} {
		if _, err := output.NewSyslog(output.SyslogOptions{Address: a}); err != nil {
			t.Errorf("NewSyslog(%s): %v", a, err)
		}
	}
}

// parseFrames splits RFC 6587 octet-counted frames: MSG-LEN SP MSG.
func parseFrames(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		num, rest, ok := bytes.Cut(b, []byte(" "))
		n, err := strconv.Atoi(string(num))
		if !ok || err != nil || n <= 0 || n > len(rest) || num[0] == '0' {
			t.Fatalf("bad frame at %.200q", b)
		}
		out = append(out, rest[:n])
		b = rest[n:]
	}
	return out
}

// The transports without rsyslog: octet counting over TCP, one datagram
// per message over UDP.
func TestSyslogFraming(t *testing.T) {
	recs := []string{`{"n":1}` + "\n", `{"n":2,"s":"ü \"q\" 12 "}` + "\n", `{"n":3,"pad":"` + strings.Repeat("x", 3000) + `"}` + "\n"}
	check := func(t *testing.T, msgs [][]byte) {
		t.Helper()
		if len(msgs) != len(recs) {
			t.Fatalf("got %d messages, want %d: %q", len(msgs), len(recs), msgs)
		}
		for i, m := range msgs {
			sub := header5424.FindSubmatch(m)
			if sub == nil || string(sub[6]) != strings.TrimSuffix(recs[i], "\n") {
				t.Errorf("message %d = %q, want MSG %q", i, m, recs[i])
			}
		}
	}

	t.Run("tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c)
			got <- b
		}()
		s := newSyslog(t, output.SyslogOptions{Address: "tcp://" + ln.Addr().String(), HostName: "h", AppName: "a"})
		for _, r := range recs {
			write(t, s, r)
		}
		s.Close()
		select {
		case b := <-got:
			check(t, parseFrames(t, b))
		case <-time.After(5 * time.Second):
			t.Fatal("no connection")
		}
	})

	t.Run("udp", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		s := newSyslog(t, output.SyslogOptions{Address: "udp://" + pc.LocalAddr().String(), HostName: "h", AppName: "a"})
		defer s.Close()
		for _, r := range recs {
			write(t, s, r)
		}
		var msgs [][]byte
		buf := make([]byte, 65536)
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range recs {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, bytes.Clone(buf[:n]))
		}
		check(t, msgs)
	})
}

// The receiver closes the connection (a restart) while the sink is idle:
// the next record goes to a new connection, not into the closed one where
// Write would succeed and the record be lost.
func TestSyslogReconnectsAfterPeerClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type conn struct {
		data []byte
		err  error
	}
	conns := make(chan conn, 2)
	go func() {
		// The first connection is closed after one message.
		c, err := ln.Accept()
		if err != nil {
			conns <- conn{err: err}
			return
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		c.Close()
		conns <- conn{bytes.Clone(buf[:n]), err}
		// The second is read to its end.
		c, err = ln.Accept()
		if err != nil {
			conns <- conn{err: err}
			return
		}
		b, err := io.ReadAll(c)
		c.Close()
		conns <- conn{b, err}
	}()
	next := func() conn {
		t.Helper()
		select {
		case c := <-conns:
			if c.err != nil {
				t.Fatal(c.err)
			}
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("receiver timed out")
		}
		return conn{}
	}

	s := newSyslog(t, output.SyslogOptions{Address: "tcp://" + ln.Addr().String(), HostName: "h", AppName: "a"})
	write(t, s, `{"n":1}`+"\n")
	first := next()
	time.Sleep(50 * time.Millisecond) // the FIN reaches the sink
	write(t, s, `{"n":2}`+"\n")
	write(t, s, `{"n":3}`+"\n")
	s.Close()
	second := next()
	var msgs []string
	for _, m := range append(parseFrames(t, first.data), parseFrames(t, second.data)...) {
		sub := header5424.FindSubmatch(m)
		if sub == nil {
			t.Fatalf("not an RFC 5424 message: %q", m)
		}
		msgs = append(msgs, string(sub[6]))
	}
	if want := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`}; strings.Join(msgs, ",") != strings.Join(want, ",") {
		t.Errorf("receiver got %q, want %q", msgs, want)
	}
}
