package output

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-fim/vigil/pkg/spool"
)

// Transport delivers records to a network destination, in order.
type Transport interface {
	// Send delivers recs (records, one JSON object each) in order. It
	// returns how many leading records were delivered (RELP: acknowledged
	// by the server; TCP and TLS syslog: written to the socket) and how
	// many were written to the connection; on an error the rest stay in
	// the spool and are sent again.
	Send(recs [][]byte) (delivered, sent int, err error)
	// Close ends the connection; a Send in progress returns.
	Close() error
	Name() string
}

// SpoolOptions configure a spooled output.
type SpoolOptions struct {
	// Path is the spool file (under agent.state_dir).
	Path     string
	MaxBytes int64
	MaxAge   time.Duration
	// NoSync is for tests and benchmarks only.
	NoSync bool
}

// SpoolStats are a spooled output's counters, for `vigil status`, the
// metrics and the agent's spool-dropped records.
type SpoolStats struct {
	Output string `json:"output"`
	Path   string `json:"path"`
	spool.Stats
	// OldestAge is how long the oldest record has waited (0 when empty).
	OldestAge time.Duration `json:"oldest_age_ns"`
	// Delivered counts records delivered since the start; Retried counts
	// records sent on a connection that then failed, to be sent again.
	Delivered uint64 `json:"delivered"`
	Retried   uint64 `json:"retried"`
	// AppendErrors counts records that could not be written to the spool
	// (a full disk): they are counted in Dropped too.
	AppendErrors uint64 `json:"append_errors"`
	// FirstDropped and LastDropped are the smallest and largest
	// event.sequence of the records dropped since the start (0: none).
	FirstDropped uint64 `json:"first_dropped_sequence,omitempty"`
	LastDropped  uint64 `json:"last_dropped_sequence,omitempty"`
	Connected    bool   `json:"connected"`
	LastError    string `json:"last_error,omitempty"`
}

// Spooled is a network output behind a spool: Write appends the record to
// the spool (group commit: records written while a commit runs share the
// next one), and a sender delivers the spool's records in order, removing
// them only once delivered. A record is in the spool file within one
// commit of its Write; Close commits what Write took before it returns.
type Spooled struct {
	tr Transport
	sp *spool.Spool

	mu      sync.Mutex
	cond    *sync.Cond
	pending [][]byte
	closing bool

	wake       chan struct{}
	stop       chan struct{}
	committed  chan struct{}
	senderDone chan struct{}

	delivered, retried, appendErrors atomic.Uint64

	smu                 sync.Mutex
	firstDrop, lastDrop uint64
	connected           bool
	lastErr             string
}

// maxPending bounds the records waiting for a commit; Write blocks beyond.
const maxPending = 8192

// Batches the sender reads from the spool.
const (
	sendBatch      = 512
	sendBatchBytes = 1 << 20
	maxBackoff     = 5 * time.Second
)

// NewSpooled opens the spool at o.Path and starts delivering it through tr.
func NewSpooled(tr Transport, o SpoolOptions) (*Spooled, error) {
	s := &Spooled{tr: tr, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		committed: make(chan struct{}), senderDone: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	sp, err := spool.Open(o.Path, spool.Options{MaxBytes: o.MaxBytes, MaxAge: o.MaxAge, NoSync: o.NoSync,
		OnDrop: s.onDrop})
	if err != nil {
		return nil, err
	}
	s.sp = sp
	go s.commit()
	go s.send()
	s.poke()
	return s, nil
}

// onDrop notes the sequence of a record the spool dropped.
func (s *Spooled) onDrop(data []byte, reason string) {
	var r struct {
		Event struct {
			Sequence uint64 `json:"sequence"`
		} `json:"event"`
	}
	if json.Unmarshal(data, &r) != nil || r.Event.Sequence == 0 {
		return
	}
	s.smu.Lock()
	q := r.Event.Sequence
	if s.firstDrop == 0 || q < s.firstDrop {
		s.firstDrop = q
	}
	if q > s.lastDrop {
		s.lastDrop = q
	}
	s.smu.Unlock()
}

// Write takes one record for the spool.
func (s *Spooled) Write(p []byte) (int, error) {
	rec := append([]byte(nil), p...)
	if n := len(rec); n > 0 && rec[n-1] == '\n' {
		rec = rec[:n-1]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) >= maxPending && !s.closing {
		s.cond.Wait()
	}
	if s.closing {
		return 0, errors.New(s.tr.Name() + ": closed")
	}
	s.pending = append(s.pending, rec)
	s.cond.Broadcast()
	return len(p), nil
}

// commit is the group committer: it appends what Write took, one
// transaction per batch.
func (s *Spooled) commit() {
	defer close(s.committed)
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closing {
			s.cond.Wait()
		}
		batch := s.pending
		s.pending = nil
		closing := s.closing
		s.cond.Broadcast()
		s.mu.Unlock()
		if len(batch) > 0 {
			if err := s.sp.Append(batch, time.Now()); err != nil {
				s.appendErrors.Add(uint64(len(batch)))
				s.setErr(err)
				for _, r := range batch {
					s.onDrop(r, "error")
				}
			}
			s.poke()
		}
		if closing {
			return
		}
	}
}

func (s *Spooled) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Spooled) setErr(err error) {
	s.smu.Lock()
	if err != nil {
		s.lastErr = err.Error()
	}
	s.smu.Unlock()
}

// send delivers the spool in order until Close.
func (s *Spooled) send() {
	defer close(s.senderDone)
	backoff := time.Duration(0)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		s.sp.Expire(time.Now())
		items, err := s.sp.Peek(sendBatch, sendBatchBytes)
		if err != nil {
			s.setErr(err)
		}
		if len(items) == 0 {
			select {
			case <-s.stop:
				return
			case <-s.wake:
			case <-tick.C:
			}
			continue
		}
		recs := make([][]byte, len(items))
		for i, it := range items {
			recs[i] = it.Data
		}
		n, sent, err := s.tr.Send(recs)
		if n > 0 {
			if aerr := s.sp.Ack(items[n-1].ID); aerr != nil {
				s.setErr(aerr)
			}
			s.delivered.Add(uint64(n))
		}
		s.smu.Lock()
		s.connected = err == nil
		s.smu.Unlock()
		if err == nil {
			backoff = 0
			continue
		}
		if sent > n {
			s.retried.Add(uint64(sent - n))
		}
		s.setErr(err)
		switch {
		case backoff == 0:
			backoff = 100 * time.Millisecond
		case backoff < maxBackoff:
			backoff *= 2
		}
		select {
		case <-s.stop:
			return
		case <-time.After(min(backoff, maxBackoff)):
		}
	}
}

// Stats returns the output's counters.
func (s *Spooled) Stats() SpoolStats {
	st := SpoolStats{Output: s.tr.Name(), Path: s.sp.Path(), Stats: s.sp.Stats(),
		Delivered: s.delivered.Load(), Retried: s.retried.Load(), AppendErrors: s.appendErrors.Load()}
	st.Dropped += st.AppendErrors
	if st.AppendErrors > 0 {
		st.DroppedBy["error"] = st.AppendErrors
	}
	if !st.Oldest.IsZero() {
		st.OldestAge = time.Since(st.Oldest)
	}
	s.smu.Lock()
	st.FirstDropped, st.LastDropped = s.firstDrop, s.lastDrop
	st.Connected, st.LastError = s.connected, s.lastErr
	s.smu.Unlock()
	return st
}

// Reopen does nothing: the sender reconnects by itself.
func (s *Spooled) Reopen() error { return nil }

// closeGrace is how long Close lets a connected output deliver.
const closeGrace = 3 * time.Second

// Close commits what Write took, lets a connected output deliver it for up
// to closeGrace, stops the sender (what it did not deliver stays in the
// spool for the next start) and closes the spool.
func (s *Spooled) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.committed
	// A connected output gets a moment to deliver what is left (the
	// agent-stopped record, say); the rest waits for the next start.
	s.poke()
	deadline := time.Now().Add(closeGrace)
	for time.Now().Before(deadline) {
		st := s.Stats()
		if st.Depth == 0 || !st.Connected {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(s.stop)
	err := s.tr.Close()
	<-s.senderDone
	if cerr := s.sp.Close(); err == nil {
		err = cerr
	}
	return err
}

// Name is the transport's.
func (s *Spooled) Name() string { return s.tr.Name() }

// SpoolStats lists the spooled outputs' counters (the agent's loss report,
// `vigil status`, the metrics).
func (f *Fanout) SpoolStats() []SpoolStats {
	f.mu.Lock()
	sinks := append([]Sink(nil), f.sinks...)
	f.mu.Unlock()
	var out []SpoolStats
	for _, s := range sinks {
		if sp, ok := s.(*Spooled); ok {
			out = append(out, sp.Stats())
		}
	}
	return out
}
