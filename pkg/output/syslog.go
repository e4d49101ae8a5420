package output

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Syslog sends each record as the MSG of an RFC 5424 message. Over TCP and
// TLS messages are octet-counted (RFC 6587 / RFC 5425), so records with
// any bytes arrive whole. (No maintained Go library writes RFC 5424 over
// TLS; the format is a one-line header.)
type Syslog struct {
	mu       sync.Mutex
	network  string // udp, tcp, tls
	addr     string
	pri      int
	host     string
	app      string
	tlsConf  *tls.Config
	conn     net.Conn
	lastDial time.Time
	// wrote says the last Write reached the socket's write (for Send's
	// retried count).
	wrote bool
}

// SyslogOptions configure a syslog sink.
type SyslogOptions struct {
	Address  string // udp://host:port, tcp://host:port, tls://host:port
	Facility int
	AppName  string
	HostName string
	CAFile   string
	// CertFile and KeyFile are a client certificate for TLS (optional).
	CertFile string
	KeyFile  string
}

// severityInfo is the severity of every record (6: informational); the
// record itself says how serious the change is.
const severityInfo = 6

// NewSyslog returns a syslog sink; it connects on first use.
func NewSyslog(o SyslogOptions) (*Syslog, error) {
	network, addr, ok := strings.Cut(o.Address, "://")
	if !ok {
		return nil, fmt.Errorf("syslog address %q: want udp://, tcp:// or tls://host:port", o.Address)
	}
	s := &Syslog{network: network, addr: addr, pri: o.Facility*8 + severityInfo, host: o.HostName, app: o.AppName}
	if s.host == "" {
		s.host, _ = os.Hostname()
	}
	if s.app == "" {
		s.app = "vigil"
	}
	switch network {
	case "udp", "tcp":
	case "tls":
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("syslog address %q: %w", o.Address, err)
		}
		conf, err := TLSConfig(host, o.CAFile, o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		s.tlsConf = conf
	default:
		return nil, fmt.Errorf("syslog address %q: unknown transport %q", o.Address, network)
	}
	return s, nil
}

// Format renders one RFC 5424 message around a record.
func (s *Syslog) Format(record []byte, now time.Time) []byte {
	return format5424(s.pri, s.host, s.app, record, now)
}

func format5424(pri int, host, app string, record []byte, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s %d - - ", pri, now.UTC().Format("2006-01-02T15:04:05.000000Z"),
		nilValue(host), nilValue(app), os.Getpid())
	b.Write(bytes.TrimRight(record, "\n"))
	return b.Bytes()
}

// TLSConfig is the client side of TLS to host: verified with the CA
// certificates of caFile (the system roots when empty), presenting the
// client certificate of certFile and keyFile when set.
func TLSConfig(host, caFile, certFile, keyFile string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no certificates", caFile)
		}
		conf.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

func nilValue(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}

func (s *Syslog) dial() error {
	if time.Since(s.lastDial) < time.Second {
		return fmt.Errorf("syslog %s://%s: not connected (retrying each second)", s.network, s.addr)
	}
	s.lastDial = time.Now()
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	switch s.network {
	case "tls":
		c, err = tls.DialWithDialer(d, "tcp", s.addr, s.tlsConf)
	default:
		c, err = d.Dial(s.network, s.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog %s://%s: %w", s.network, s.addr, err)
	}
	s.conn = c
	return nil
}

// Send writes records in order (the spool's Transport): a record written
// to the socket counts as delivered; TCP cannot say more.
func (s *Syslog) Send(recs [][]byte) (delivered, sent int, err error) {
	for i, r := range recs {
		if _, err := s.Write(r); err != nil {
			s.mu.Lock()
			wrote := s.wrote
			s.mu.Unlock()
			if wrote {
				return i, i + 1, err
			}
			return i, i, err
		}
	}
	return len(recs), len(recs), nil
}

// Write sends one record.
func (s *Syslog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrote = false
	msg := s.Format(p, time.Now())
	if s.network != "udp" {
		msg = append([]byte(fmt.Sprintf("%d ", len(msg))), msg...)
	}
	for attempt := 0; attempt < 2; attempt++ {
		if s.conn != nil && s.network != "udp" && closedByPeer(s.conn) {
			// The receiver restarted: a write would seem to succeed and
			// the record be lost, so reconnect first.
			s.conn.Close()
			s.conn = nil
			s.lastDial = time.Time{}
		}
		if s.conn == nil {
			if err := s.dial(); err != nil {
				return 0, err
			}
		}
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		s.wrote = true
		if _, err := s.conn.Write(msg); err != nil {
			s.conn.Close()
			s.conn = nil
			s.lastDial = time.Time{}
			if attempt == 1 {
				return 0, fmt.Errorf("syslog %s://%s: %w", s.network, s.addr, err)
			}
			continue
		}
		return len(p), nil
	}
	return 0, nil
}

// closedByPeer reports whether the receiver closed (or reset) a stream
// connection. A syslog receiver sends nothing, so a non-blocking peek that
// finds nothing to read means the connection is open. Over TLS the receiver
// may have sent handshake messages (session tickets) or a close_notify:
// those are read through the TLS layer, with a short deadline.
func closedByPeer(c net.Conn) bool {
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var n int
	var perr error
	var one [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true // one try, never wait
	}); err != nil {
		return true
	}
	switch {
	case perr == unix.EAGAIN || perr == unix.EINTR:
		return false // nothing to read: open
	case perr != nil:
		return true // reset
	case n == 0:
		return true // end of stream
	}
	// Bytes to read: consume them until there are none (open) or the
	// stream ends; a receiver that keeps talking is taken as open.
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 4096)
	for i := 0; i < 16; i++ {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
	return false
}

// Reopen reconnects.
func (s *Syslog) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.lastDial = time.Time{}
	return nil
}

func (s *Syslog) Close() error { return s.Reopen() }

func (s *Syslog) Name() string { return "syslog:" + s.network + "://" + s.addr }
