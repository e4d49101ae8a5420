package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/consumer"
)

// What the agent does at its limits: a path the kernel's watch map has no
// room for, a file too large to parse. Each is a record that says so and a
// counter in Stats, never a silent truncation.

// limitStats are the limits' counters (under Agent.mu).
type limitStats struct {
	notWatched   uint64 // paths that could not be watched, for any reason
	watchMapFull uint64 // of those, refused because a kernel map was full
	oversize     uint64 // observations of files over maxRead, not parsed
}

// LimitStats counts what the agent could not do at its limits.
type LimitStats struct {
	// NotWatched counts paths that could not be watched (each is in a
	// not-watched record).
	NotWatched uint64 `json:"not_watched"`
	// WatchMapFull counts those refused because a kernel map was full
	// (sensor.max_watches).
	WatchMapFull uint64 `json:"watch_map_full"`
	// Oversize counts reads of files larger than the parse limit: hashed,
	// not parsed.
	Oversize uint64 `json:"oversize_files"`
}

// maxListed bounds the errors one not-watched record lists; the record
// counts them all.
const maxListed = 10

// isMapFull reports whether a watch error is a full kernel map: a BPF hash
// map refuses a new key with E2BIG when it holds max_entries.
func isMapFull(err error) bool {
	return errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC)
}

// notWatched writes one not-watched record for a batch of watch errors
// (at start, or when a new file in a watched tree could not be added) and
// counts them. The record lists the first maxListed and counts every one.
func (a *Agent) notWatched(when string, errs []error) {
	if len(errs) == 0 {
		return
	}
	full := 0
	for i, err := range errs {
		if isMapFull(err) {
			full++
		}
		if i < maxListed {
			a.opt.Log.Warn().Err(err).Str(logKeyWhen, when).Msg("not watched")
		}
	}
	if len(errs) > maxListed {
		a.opt.Log.Warn().Int(logKeyCount, len(errs)).Str(logKeyWhen, when).Msg("not watched: more paths")
	}
	a.mu.Lock()
	a.lim.notWatched += uint64(len(errs))
	a.lim.watchMapFull += uint64(full)
	a.mu.Unlock()
	a.rec.notWatched(when, errs, full, a.sens.Capacity())
}

// notWatched writes the not-watched record.
func (r *recorder) notWatched(when string, errs []error, full int, capacity uint32) {
	listed := zerolog.Arr()
	for i, err := range errs {
		if i == maxListed {
			break
		}
		listed.Str(err.Error())
	}
	v := zerolog.Dict().Str("when", when).Int("count", len(errs)).Int("map_full", full).
		Uint32("map_capacity", capacity).Array("errors", listed)
	if len(errs) > maxListed {
		v.Int("not_listed", len(errs)-maxListed)
	}
	if full > 0 {
		v.Str("remedy", "raise sensor.max_watches (the kernel's watch map is full) and restart")
	}
	r.begin(time.Now(), "not-watched", []string{"file"}, []string{"error"}, "alert").
		Dict("vigil", zerolog.Dict().Dict("not_watched", v)).Send()
}

// oversizeProblem is the problem a record carries for a file too large to
// parse.
func oversizeProblem(size int64) consumer.Problem {
	return consumer.Problem{Msg: fmt.Sprintf("file of %d bytes is over the %d-byte parse limit: "+
		"content not compared (file.hash.sha256 covers all of it)", size, maxRead)}
}

// symlinkProblem is the problem a record carries for a watched path that
// is now a symbolic link (or leads through one).
var symlinkProblem = consumer.Problem{Msg: "the path is now a symbolic link or leads through one: " +
	"not followed, content not read"}

func (a *Agent) countOversize() {
	a.mu.Lock()
	a.lim.oversize++
	a.mu.Unlock()
}

// Log keys of the not-watched log lines: at which stage, how many.
const (
	logKeyWhen  = "when"
	logKeyCount = "count"
)
