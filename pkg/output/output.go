// Package output delivers records (one JSON object per line, as zerolog
// writes them) to their destinations: stdout, a file reopened on SIGHUP for
// logrotate, and syslog (RFC 5424 over UDP, TCP or TLS).
package output

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hashicorp/go-multierror"
)

// Sink is one destination.
type Sink interface {
	io.Writer
	// Reopen is called on SIGHUP (a file reopens its path).
	Reopen() error
	Close() error
	Name() string
}

// Fanout writes every record to every sink. A sink that fails is reported
// by Write but does not stop the others.
type Fanout struct {
	mu    sync.Mutex
	sinks []Sink
	fails map[string]uint64
}

// NewFanout returns a writer over sinks.
func NewFanout(sinks ...Sink) *Fanout {
	return &Fanout{sinks: sinks, fails: map[string]uint64{}}
}

// Write implements io.Writer: p is one record.
func (f *Fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs *multierror.Error
	for _, s := range f.sinks {
		if _, err := s.Write(p); err != nil {
			f.fails[s.Name()]++
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	return len(p), errs.ErrorOrNil()
}

// Failures counts failed writes per sink.
func (f *Fanout) Failures() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.fails))
	for k, v := range f.fails {
		out[k] = v
	}
	return out
}

// Reopen reopens every sink.
func (f *Fanout) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs *multierror.Error
	for _, s := range f.sinks {
		if err := s.Reopen(); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	return errs.ErrorOrNil()
}

// Close closes every sink.
func (f *Fanout) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs *multierror.Error
	for _, s := range f.sinks {
		if err := s.Close(); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

// Stream writes to an io.Writer it does not own (stdout).
type Stream struct {
	W     io.Writer
	Label string
}

func (s Stream) Write(p []byte) (int, error) { return s.W.Write(p) }
func (s Stream) Reopen() error               { return nil }
func (s Stream) Close() error                { return nil }
func (s Stream) Name() string                { return s.Label }

// File appends to a path, created with mode 0600, reopened by Reopen so
// logrotate can move it away.
type File struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenFile opens a file sink.
func OpenFile(path string) (*File, error) {
	s := &File{path: path}
	if err := s.Reopen(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *File) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, errors.New("file output closed")
	}
	return s.f.Write(p)
}

// Reopen closes and reopens the path.
func (s *File) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening output file: %w", err)
	}
	// An existing file keeps its mode: make sure records are not readable by others.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("output file mode: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f = f
	return nil
}

func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func (s *File) Name() string { return "file:" + s.path }
