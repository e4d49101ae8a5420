// Package relp is a client of RELP, the Reliable Event Logging Protocol of
// rsyslog (imrelp) and librelp: every message is a numbered transaction
// that the server acknowledges once it has taken the message, so a sender
// knows what arrived. No maintained Go library exists (docs/operations.md
// says which were looked at), and the client side is small: this package
// speaks the framing, the open/close handshake with its offers, a window
// of unacknowledged messages and their "rsp" answers.
//
// A frame is
//
//	TXNR SP COMMAND SP DATALEN [SP DATA] LF
//
// with TXNR 1..999999999 (then 1 again), COMMAND one of open, syslog,
// close, rsp (and serverclose from the server, with TXNR 0), DATALEN the
// bytes of DATA in decimal. An rsp's DATA is "CODE SP TEXT [LF offers]";
// 200 is success.
package relp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a client.
type Options struct {
	// Address is host:port.
	Address string
	// TLS, if set, wraps the connection (RELP over TLS, as imrelp's tls="on").
	TLS *tls.Config
	// Window is how many messages may wait for their acknowledgement (128 if 0).
	Window int
	// Timeout bounds a dial, a write and the wait for each answer (30 s if 0).
	Timeout time.Duration
	// Software is the relp_software offer (name, version).
	Software string
}

// ErrServerClose is returned when the server announced that it closes the
// session (serverclose): the messages not acknowledged must be sent again.
var ErrServerClose = errors.New("relp: the server closed the session")

// RefusedError is an rsp other than 200 for a message.
type RefusedError struct {
	Code int
	Text string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("relp: message refused: %d %s", e.Code, e.Text)
}

const maxTxnr = 999999999

// maxFrame bounds an answer's DATALEN (answers are short; a bigger one is a
// broken or hostile server).
const maxFrame = 1 << 20

// Client is one RELP session. Send and Close may be called from different
// goroutines; Abort ends a Send in progress.
type Client struct {
	opt  Options
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	txnr int

	// Offers are the server's answer to open (relp_version, relp_software, commands).
	Offers map[string]string

	mu sync.Mutex // one Send or Close at a time
}

// Dial connects and opens the session; the server must offer "syslog".
func Dial(opt Options) (*Client, error) {
	if opt.Window <= 0 {
		opt.Window = 128
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.Software == "" {
		opt.Software = "vigil"
	}
	d := &net.Dialer{Timeout: opt.Timeout}
	var conn net.Conn
	var err error
	if opt.TLS != nil {
		conn, err = tls.DialWithDialer(d, "tcp", opt.Address, opt.TLS)
	} else {
		conn, err = d.Dial("tcp", opt.Address)
	}
	if err != nil {
		return nil, fmt.Errorf("relp %s: %w", opt.Address, err)
	}
	c := &Client{opt: opt, conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	offers := "relp_version=0\nrelp_software=" + opt.Software + "\ncommands=syslog"
	if err := c.handshake(offers); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relp %s: open: %w", opt.Address, err)
	}
	return c, nil
}

func (c *Client) next() int {
	c.txnr++
	if c.txnr > maxTxnr {
		c.txnr = 1
	}
	return c.txnr
}

func (c *Client) handshake(offers string) error {
	n := c.next()
	if err := c.writeFrame(n, "open", []byte(offers)); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	f, err := c.readFrame()
	if err != nil {
		return err
	}
	if f.cmd != "rsp" || f.txnr != n {
		return fmt.Errorf("unexpected answer %d %s to open", f.txnr, f.cmd)
	}
	code, text, rest := parseRsp(f.data)
	if code != 200 {
		return &RefusedError{Code: code, Text: text}
	}
	c.Offers = map[string]string{}
	for _, l := range strings.Split(rest, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			c.Offers[k] = v
		}
	}
	for _, cmd := range strings.Split(c.Offers["commands"], ",") {
		if strings.TrimSpace(cmd) == "syslog" {
			return nil
		}
	}
	return fmt.Errorf("the server does not offer the syslog command (commands=%q)", c.Offers["commands"])
}

// parseRsp splits an rsp's data: "CODE SP TEXT [LF rest]".
func parseRsp(d []byte) (int, string, string) {
	head, rest, _ := strings.Cut(string(d), "\n")
	num, text, _ := strings.Cut(head, " ")
	code, err := strconv.Atoi(num)
	if err != nil {
		return 0, head, rest
	}
	return code, text, rest
}

func (c *Client) writeFrame(txnr int, cmd string, data []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.opt.Timeout))
	if len(data) == 0 {
		_, err := fmt.Fprintf(c.w, "%d %s 0\n", txnr, cmd)
		return err
	}
	fmt.Fprintf(c.w, "%d %s %d ", txnr, cmd, len(data))
	c.w.Write(data)
	return c.w.WriteByte('\n')
}

func (c *Client) flush() error {
	c.conn.SetWriteDeadline(time.Now().Add(c.opt.Timeout))
	return c.w.Flush()
}

type frame struct {
	txnr int
	cmd  string
	data []byte
}

// readFrame reads one frame from the server.
func (c *Client) readFrame() (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(c.opt.Timeout))
	var f frame
	tok := func(max int) (string, byte, error) {
		var b []byte
		for {
			ch, err := c.r.ReadByte()
			if err != nil {
				return "", 0, err
			}
			if ch == ' ' || ch == '\n' {
				return string(b), ch, nil
			}
			if len(b) >= max {
				return "", 0, fmt.Errorf("malformed frame (field longer than %d bytes)", max)
			}
			b = append(b, ch)
		}
	}
	s, sep, err := tok(9)
	if err != nil {
		return f, err
	}
	if f.txnr, err = strconv.Atoi(s); err != nil || sep != ' ' {
		return f, fmt.Errorf("malformed frame: transaction number %q", s)
	}
	if f.cmd, sep, err = tok(32); err != nil {
		return f, err
	}
	if sep != ' ' {
		return f, fmt.Errorf("malformed frame: command %q without length", f.cmd)
	}
	s, sep, err = tok(9)
	if err != nil {
		return f, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxFrame {
		return f, fmt.Errorf("malformed frame: data length %q", s)
	}
	if n == 0 {
		if sep != '\n' {
			// Some servers write "0 " before the trailer.
			if ch, err := c.r.ReadByte(); err != nil || ch != '\n' {
				return f, errors.New("malformed frame: no trailer")
			}
		}
		return f, nil
	}
	if sep != ' ' {
		return f, errors.New("malformed frame: no data after the length")
	}
	f.data = make([]byte, n)
	if _, err := io.ReadFull(c.r, f.data); err != nil {
		return f, err
	}
	if ch, err := c.r.ReadByte(); err != nil || ch != '\n' {
		return f, errors.New("malformed frame: no trailer after the data")
	}
	return f, nil
}

// Send sends msgs as syslog transactions, keeping at most Window without
// acknowledgement, and waits for the acknowledgements. It returns how many
// leading messages the server acknowledged (those arrived), and how many
// were written to the connection. On an error the session is unusable:
// Close it, Dial again and send the unacknowledged ones again (the server
// may have taken some of them: at least once, never lost).
func (c *Client) Send(msgs [][]byte) (acked, sent int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inflight := map[int]int{} // txnr -> index in msgs
	done := make([]bool, len(msgs))
	for acked < len(msgs) {
		for sent < len(msgs) && len(inflight) < c.opt.Window {
			n := c.next()
			if err := c.writeFrame(n, "syslog", msgs[sent]); err != nil {
				return acked, sent, err
			}
			inflight[n] = sent
			sent++
		}
		if err := c.flush(); err != nil {
			return acked, sent, err
		}
		f, err := c.readFrame()
		if err != nil {
			return acked, sent, err
		}
		switch {
		case f.cmd == "serverclose":
			return acked, sent, ErrServerClose
		case f.cmd != "rsp":
			return acked, sent, fmt.Errorf("relp: unexpected command %q from the server", f.cmd)
		}
		i, ok := inflight[f.txnr]
		if !ok {
			return acked, sent, fmt.Errorf("relp: answer to an unknown transaction %d", f.txnr)
		}
		delete(inflight, f.txnr)
		if code, text, _ := parseRsp(f.data); code != 200 {
			return acked, sent, &RefusedError{Code: code, Text: text}
		}
		done[i] = true
		for acked < len(msgs) && done[acked] {
			acked++
		}
	}
	return acked, sent, nil
}

// Close ends the session with the close handshake (waiting briefly for the
// server's answer) and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

// CloseOrAbort closes with the handshake when no Send is in progress, else
// aborts the connection (the Send returns an error).
func (c *Client) CloseOrAbort() error {
	if !c.mu.TryLock() {
		return c.Abort()
	}
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Client) closeLocked() error {
	old := c.opt.Timeout
	c.opt.Timeout = 2 * time.Second
	defer func() { c.opt.Timeout = old }()
	n := c.next()
	if c.writeFrame(n, "close", nil) == nil && c.flush() == nil {
		for i := 0; i < 4; i++ {
			f, err := c.readFrame()
			if err != nil || (f.cmd == "rsp" && f.txnr == n) || f.cmd == "serverclose" {
				break
			}
		}
	}
	return c.conn.Close()
}

// Abort closes the connection at once: a Send in progress returns an error.
func (c *Client) Abort() error { return c.conn.Close() }

// Frame renders one frame (for tests and tools).
func Frame(txnr int, cmd string, data []byte) []byte {
	var b bytes.Buffer
	if len(data) == 0 {
		fmt.Fprintf(&b, "%d %s 0\n", txnr, cmd)
		return b.Bytes()
	}
	fmt.Fprintf(&b, "%d %s %d ", txnr, cmd, len(data))
	b.Write(data)
	b.WriteByte('\n')
	return b.Bytes()
}
