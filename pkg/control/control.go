// Package control is the running agent's control socket: a unix socket,
// mode 0600 and answering only root (or the agent's own user), on which
// `vigil status` asks for the agent's state. One request per connection:
// a JSON line {"command":"status"}, answered by one JSON object.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/agent"
)

// Request is what a client sends.
type Request struct {
	Command string `json:"command"`
}

// Response is the agent's answer.
type Response struct {
	// State is "running", or "starting" before the watch set is seeded.
	State   string       `json:"state"`
	Version string       `json:"version"`
	Stats   *agent.Stats `json:"stats,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// StatsFunc gives the agent's snapshot; ok is false while it starts.
type StatsFunc func() (agent.Stats, bool)

// Server answers on the socket until Close.
type Server struct {
	ln      *net.UnixListener
	path    string
	ino     uint64
	stats   StatsFunc
	version string
	log     zerolog.Logger
	done    chan struct{}
}

// Log keys.
const (
	logKeySocket = "socket"
	logKeyPeer   = "peer_uid"
)

// ErrInUse is returned when another agent answers on the socket.
var ErrInUse = errors.New("another vigil answers on the control socket")

// Listen opens the socket at path (its directory is made 0700 if missing;
// a stale socket left by a killed agent is replaced).
func Listen(path string, stats StatsFunc, version string, log zerolog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing a stale control socket: %w", err)
		}
	}
	// Nobody else may connect, even in the moment before the chmod: the
	// socket is made with a umask that leaves only the owner's bits.
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{ln: ln, path: path, stats: stats, version: version, log: log, done: make(chan struct{})}
	if st, err := os.Lstat(path); err == nil {
		s.ino = st.Sys().(*syscall.Stat_t).Ino
	}
	go s.serve()
	return s, nil
}

func (s *Server) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn().Err(err).Str(logKeySocket, s.path).Msg("control socket")
			}
			return
		}
		go s.answer(c)
	}
}

func (s *Server) answer(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	enc := json.NewEncoder(c)
	uid, err := peerUID(c)
	if err != nil || (uid != 0 && uid != uint32(os.Geteuid())) {
		s.log.Warn().Err(err).Uint32(logKeyPeer, uid).Msg("control socket: refused a peer")
		enc.Encode(Response{Error: "permission denied"})
		return
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Command {
	case "status":
		r := Response{State: "starting", Version: s.version}
		if st, ok := s.stats(); ok {
			r.State, r.Stats = "running", &st
		}
		enc.Encode(r)
	default:
		enc.Encode(Response{Error: fmt.Sprintf("unknown command %q", req.Command)})
	}
}

func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops answering and removes the socket (if it is still ours).
func (s *Server) Close() error {
	err := s.ln.Close()
	<-s.done
	if st, lerr := os.Lstat(s.path); lerr == nil && st.Sys().(*syscall.Stat_t).Ino == s.ino {
		os.Remove(s.path)
	}
	return err
}

// ErrNoAgent is returned by Query when no agent answers on the socket.
var ErrNoAgent = errors.New("no vigil agent is running")

// Query asks the agent on the socket for its status.
func Query(path string, timeout time.Duration) (Response, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return Response{}, fmt.Errorf("%w (nothing answers on %s)", ErrNoAgent, path)
		case errors.Is(err, fs.ErrPermission):
			return Response{}, fmt.Errorf("control socket %s: permission denied (run as root)", path)
		}
		return Response{}, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(Request{Command: "status"}); err != nil {
		return Response{}, fmt.Errorf("control socket %s: %w", path, err)
	}
	var r Response
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return Response{}, fmt.Errorf("control socket %s: reading the answer: %w", path, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("control socket %s: %s", path, r.Error)
	}
	return r, nil
}

// Format writes a status answer for people.
func Format(w io.Writer, r Response) {
	if r.Stats == nil {
		fmt.Fprintf(w, "vigil %s is starting (probes loading, watch set seeding)\n", r.Version)
		return
	}
	s := r.Stats
	fmt.Fprintf(w, "vigil %s is running (pid %d, since %s, up %s)\n", r.Version, s.PID,
		s.Started.UTC().Format(time.RFC3339), time.Since(s.Started).Round(time.Second))
	fmt.Fprintf(w, "  config:       %s\n", strings.Join(s.Config, ", "))
	fmt.Fprintf(w, "  sensor:       object %s (%s) on kernel %s: %s\n", s.Sensor.Object, s.Sensor.HookTyp,
		s.Sensor.Kernel, s.Sensor.Why)
	fmt.Fprintf(w, "  watch set:    %d rules, %d files (%d file targets, %d trees, %d anchors)\n",
		s.Watch.Rules, s.Watch.Files, s.Watch.FileTargets, s.Watch.Trees, s.Watch.Anchors)
	entries := "?"
	if s.Watch.MapEntries >= 0 {
		entries = fmt.Sprint(s.Watch.MapEntries)
	}
	fmt.Fprintf(w, "  kernel map:   %s of %d inode entries\n", entries, s.Watch.MapCapacity)
	fmt.Fprintf(w, "  ring buffer:  %d of %d bytes unread\n", s.RingBuffer.Used, s.RingBuffer.Size)
	var total uint64
	for _, c := range s.Records {
		total += c.N
	}
	fmt.Fprintf(w, "  records:      %d written; changes: %d live, %d recovered\n", total, s.Live, s.Recovered)
	fmt.Fprintf(w, "  lost:         %d in the kernel, %d in the queue\n", s.LostKernel, s.LostQueue)
	var hits, emitted uint64
	for _, v := range s.Kernel.Hits {
		hits += v
	}
	for _, v := range s.Kernel.Emitted {
		emitted += v
	}
	fmt.Fprintf(w, "  kernel hooks: %d hits, %d records emitted\n", hits, emitted)
	selfTest := "passed"
	if !s.SelfTestOK {
		selfTest = "FAILED"
	}
	fmt.Fprintf(w, "  self-test:    %s\n", selfTest)
	fmt.Fprintf(w, "  host:         id %s, last event.sequence %d\n", s.HostID, s.Sequence)
	for _, sp := range s.Spools {
		state := "delivering"
		if !sp.Connected {
			state = "not connected"
			if sp.LastError != "" {
				state += ": " + sp.LastError
			}
		}
		fmt.Fprintf(w, "  spool:        %s: %d records (%d bytes) waiting, oldest %s; %d delivered, %d retried, %d dropped (%d full, %d too old); %s\n",
			sp.Output, sp.Depth, sp.Bytes, sp.OldestAge.Round(time.Millisecond), sp.Delivered, sp.Retried, sp.Dropped,
			sp.DroppedBy["size"], sp.DroppedBy["age"], state)
	}
	if lr := s.LastReload; lr != nil {
		res := "applied"
		if !lr.OK {
			res = "FAILED, the previous configuration runs: " + strings.Join(lr.Errors, "; ")
		} else if len(lr.RestartNeeded) > 0 {
			res += "; needs a restart for " + strings.Join(lr.RestartNeeded, ", ")
		}
		fmt.Fprintf(w, "  last reload:  %s %s (%d ok, %d failed in all)\n", lr.At.UTC().Format(time.RFC3339), res,
			s.Reloads["success"], s.Reloads["failure"])
	}
}
