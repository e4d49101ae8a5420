package output

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vigil-fim/vigil/pkg/relp"
)

// RELP sends records to a RELP server (rsyslog's imrelp), each the MSG of an
// RFC 5424 message as the syslog output writes it; a record is delivered
// when the server acknowledged it.
type RELP struct {
	addr, url string
	pri       int
	host, app string
	opt       relp.Options

	mu     sync.Mutex
	client *relp.Client
}

// RELPOptions configure a RELP output.
type RELPOptions struct {
	// Address is relp://host:port or relp+tls://host:port.
	Address  string
	Facility int
	AppName  string
	HostName string
	// CAFile verifies the server (relp+tls; the system roots when empty);
	// CertFile and KeyFile are an optional client certificate.
	CAFile, CertFile, KeyFile string
	// Window is how many messages may wait for their acknowledgement.
	Window int
	// Timeout bounds a connection attempt and the wait for an answer.
	Timeout time.Duration
}

// NewRELP returns a RELP transport; it connects on first use.
func NewRELP(o RELPOptions) (*RELP, error) {
	scheme, addr, ok := strings.Cut(o.Address, "://")
	if !ok || (scheme != "relp" && scheme != "relp+tls") {
		return nil, fmt.Errorf("relp address %q: want relp://host:port or relp+tls://host:port", o.Address)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("relp address %q: %w", o.Address, err)
	}
	r := &RELP{addr: addr, url: o.Address, pri: o.Facility*8 + severityInfo, host: o.HostName, app: o.AppName,
		opt: relp.Options{Address: addr, Window: o.Window, Timeout: o.Timeout, Software: "vigil"}}
	if r.host == "" {
		r.host, _ = os.Hostname()
	}
	if r.app == "" {
		r.app = "vigil"
	}
	if scheme == "relp+tls" {
		var conf *tls.Config
		if conf, err = TLSConfig(host, o.CAFile, o.CertFile, o.KeyFile); err != nil {
			return nil, fmt.Errorf("relp: %w", err)
		}
		r.opt.TLS = conf
	}
	return r, nil
}

// Send delivers records in order; delivered counts the acknowledged ones.
func (r *RELP) Send(recs [][]byte) (delivered, sent int, err error) {
	r.mu.Lock()
	c := r.client
	r.mu.Unlock()
	if c == nil {
		if c, err = relp.Dial(r.opt); err != nil {
			return 0, 0, err
		}
		r.mu.Lock()
		r.client = c
		r.mu.Unlock()
	}
	now := time.Now()
	msgs := make([][]byte, len(recs))
	for i, rec := range recs {
		msgs[i] = format5424(r.pri, r.host, r.app, rec, now)
	}
	delivered, sent, err = c.Send(msgs)
	if err != nil {
		c.Abort()
		r.mu.Lock()
		if r.client == c {
			r.client = nil
		}
		r.mu.Unlock()
		return delivered, sent, fmt.Errorf("relp %s: %w", r.addr, err)
	}
	return delivered, sent, nil
}

// Close ends the session: with RELP's close handshake when idle, at once
// when a Send is waiting.
func (r *RELP) Close() error {
	r.mu.Lock()
	c := r.client
	r.client = nil
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.CloseOrAbort()
}

// Name is the output's address.
func (r *RELP) Name() string { return "relp:" + r.url }
