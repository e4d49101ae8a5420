package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// SequenceFile holds event.sequence across restarts, in the state directory.
const SequenceFile = "sequence"

// sequenceBlock is how many sequence numbers are reserved on disk at a
// time: the file is written (and synced) once per block, and at a clean
// stop. After a crash the next run starts past the last reservation, so
// the numbers skip ahead by less than a block, never repeat.
const sequenceBlock = 4096

// Sequence hands out event.sequence: per host, increasing by one per
// record, and never repeating across restarts. Its file is locked for the
// run: a second vigil on the same state directory is refused.
type Sequence struct {
	mu       sync.Mutex
	f        *os.File
	next     uint64 // the next number to hand out
	reserved uint64 // numbers below this are reserved on disk
}

// OpenSequence opens (creating, 0600) and locks dir's sequence file.
func OpenSequence(dir string) (*Sequence, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	p := filepath.Join(dir, SequenceFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sequence file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("sequence file %s: %w", p, ErrLocked)
		}
		return nil, fmt.Errorf("sequence file %s: %w", p, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("sequence file: %w", err)
	}
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	s := &Sequence{f: f, next: 1}
	if txt := strings.TrimSpace(string(b[:n])); txt != "" {
		v, err := strconv.ParseUint(txt, 10, 64)
		if err != nil || v == 0 {
			f.Close()
			return nil, fmt.Errorf("sequence file %s: corrupt (%q): remove it to start again from 1", p, txt)
		}
		s.next = v
	}
	if err := s.store(s.next + sequenceBlock); err != nil {
		f.Close()
		return nil, err
	}
	s.reserved = s.next + sequenceBlock
	return s, nil
}

// store writes v (fixed width, one write) and syncs it.
func (s *Sequence) store(v uint64) error {
	if _, err := s.f.WriteAt([]byte(fmt.Sprintf("%020d\n", v)), 0); err != nil {
		return fmt.Errorf("sequence file: %w", err)
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return fmt.Errorf("sequence file: %w", err)
	}
	return nil
}

// Next returns the next number. If the disk refuses a new reservation the
// numbers still increase (and the error says so once per block).
func (s *Sequence) Next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.next >= s.reserved {
		err = s.store(s.reserved + sequenceBlock)
		s.reserved += sequenceBlock
	}
	v := s.next
	s.next++
	return v, err
}

// Close writes where the next run starts and releases the lock.
func (s *Sequence) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.store(s.next)
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

// HostIDFile is the generated host identity's name in the state directory.
const HostIDFile = "host.id"

var machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// HostID returns host.id and where it came from: for mode "" the host's
// /etc/machine-id (machineID, the path), else an id generated once and kept
// in dir/host.id; for "generated" always the latter; any other mode is the
// id itself ("config").
func HostID(dir, mode, machineID string) (id, source string, err error) {
	switch mode {
	case "":
		if b, err := os.ReadFile(machineID); err == nil {
			if v := strings.TrimSpace(string(b)); machineIDRe.MatchString(v) {
				return v, machineID, nil
			}
		}
	case "generated":
	default:
		return mode, "config", nil
	}
	p := filepath.Join(dir, HostIDFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if v := strings.TrimSpace(string(b)); machineIDRe.MatchString(v) {
			return v, p, nil
		}
		return "", "", fmt.Errorf("host id file %s: not 32 hex digits: remove it to generate a new one", p)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("host id file: %w", err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	v := hex.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("state directory: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(v+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("host id file: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", "", fmt.Errorf("host id file: %w", err)
	}
	return v, p, nil
}
