package relp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeServer speaks the server side just enough to check the client's
// frames: it answers open with offers, and syslog messages through answer.
type fakeServer struct {
	ln  net.Listener
	got chan string // every frame received, "txnr cmd data"
}

func newFake(t *testing.T, answer func(w io.Writer, txnr int, data string, seen int) bool) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, got: make(chan string, 1000)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		seen := 0
		for {
			var txnr, n int
			var cmd string
			if _, err := fmt.Fscanf(r, "%d %s %d", &txnr, &cmd, &n); err != nil {
				return
			}
			data := ""
			if n > 0 {
				r.ReadByte() // SP
				b := make([]byte, n)
				io.ReadFull(r, b)
				data = string(b)
			}
			if b, _ := r.ReadByte(); b != '\n' {
				s.got <- "BAD TRAILER"
				return
			}
			s.got <- fmt.Sprintf("%d %s %s", txnr, cmd, data)
			switch cmd {
			case "open":
				c.Write(Frame(txnr, "rsp", []byte("200 OK\nrelp_version=0\nrelp_software=fake\ncommands=syslog")))
			case "close":
				c.Write(Frame(txnr, "rsp", nil))
				return
			case "syslog":
				seen++
				if !answer(c, txnr, data, seen) {
					return
				}
			}
		}
	}()
	return s
}

func TestHandshakeWindowAcks(t *testing.T) {
	// Acknowledge in pairs, the second one first: the client must keep its
	// window and count only the leading acknowledged messages.
	var held []int
	s := newFake(t, func(w io.Writer, txnr int, data string, seen int) bool {
		held = append(held, txnr)
		if len(held) == 2 {
			w.Write(Frame(held[1], "rsp", []byte("200 OK")))
			w.Write(Frame(held[0], "rsp", []byte("200 OK")))
			held = nil
		}
		return true
	})
	c, err := Dial(Options{Address: s.ln.Addr().String(), Window: 4, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if c.Offers["relp_software"] != "fake" {
		t.Errorf("offers = %v", c.Offers)
	}
	open := <-s.got
	if open != "1 open relp_version=0\nrelp_software=vigil\ncommands=syslog" {
		t.Errorf("open frame = %q", open)
	}
	var msgs [][]byte
	for i := 0; i < 10; i++ {
		msgs = append(msgs, []byte(fmt.Sprintf("<86>1 - h a - - - {\"n\":%d}\nwith a line feed", i)))
	}
	acked, sent, err := c.Send(msgs)
	if err != nil || acked != 10 || sent != 10 {
		t.Fatalf("Send = %d acked, %d sent, %v", acked, sent, err)
	}
	for i := 0; i < 10; i++ {
		f := <-s.got
		want := fmt.Sprintf("%d syslog %s", i+2, msgs[i])
		if f != want {
			t.Errorf("frame %d = %q, want %q", i, f, want)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if f := <-s.got; !strings.HasSuffix(f, " close ") || !strings.HasPrefix(f, "12 ") {
		t.Errorf("close frame = %q", f)
	}
}

func TestServerCloseAndRefusal(t *testing.T) {
	s := newFake(t, func(w io.Writer, txnr int, data string, seen int) bool {
		switch seen {
		case 1:
			w.Write(Frame(txnr, "rsp", []byte("200 OK")))
		case 2:
			w.Write(Frame(txnr, "rsp", []byte("500 no room")))
		}
		return true
	})
	c, err := Dial(Options{Address: s.ln.Addr().String(), Window: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	acked, sent, err := c.Send([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != 500 || acked != 1 || sent != 2 {
		t.Fatalf("Send = %d, %d, %v; want 1 acked, 2 sent, a 500 refusal", acked, sent, err)
	}
	c.Abort()

	s = newFake(t, func(w io.Writer, txnr int, data string, seen int) bool {
		w.Write(Frame(0, "serverclose", nil))
		return false
	})
	c, err = Dial(Options{Address: s.ln.Addr().String(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if acked, _, err := c.Send([][]byte{[]byte("x")}); !errors.Is(err, ErrServerClose) || acked != 0 {
		t.Fatalf("Send after serverclose = %d, %v", acked, err)
	}
	c.Abort()
}

func TestTxnrWraps(t *testing.T) {
	c := &Client{txnr: maxTxnr - 1}
	if a, b := c.next(), c.next(); a != maxTxnr || b != 1 {
		t.Errorf("next = %d, %d", a, b)
	}
	if got := string(Frame(7, "rsp", nil)); got != "7 rsp 0\n" {
		t.Errorf("empty frame %q", got)
	}
	if got := string(Frame(999999999, "syslog", []byte("x y"))); got != strconv.Itoa(999999999)+" syslog 3 x y\n" {
		t.Errorf("frame %q", got)
	}
}
