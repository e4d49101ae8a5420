// Package agent wires vigil's stages together: the sensor's records, the
// watch set, and the output.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// DefaultPaths are the identity files watched when nothing else is asked.
var DefaultPaths = []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers"}

// Options configure a run.
type Options struct {
	Paths  []string
	Loader loader.Options
	Out    zerolog.Logger // records
	Log    zerolog.Logger // diagnostics
}

// Run loads the sensor, seeds the watch set and writes one record per
// kernel event until ctx ends.
func Run(ctx context.Context, opt Options) error {
	opt.Loader.Log = opt.Log
	opt.Loader.SelfPID = uint32(os.Getpid())
	s, err := sensor.New(opt.Loader)
	if err != nil {
		return fmt.Errorf("starting sensor: %w", err)
	}
	defer s.Close()
	set := watch.New(s)
	var watched []string
	for _, p := range opt.Paths {
		if _, err := set.AddFile(p); err != nil {
			opt.Log.Warn().Err(err).Str("path", p).Msg("not watched")
			continue
		}
		watched = append(watched, p)
	}
	s.Info().Log(opt.Out.Info()).Str("event.action", "agent-ready").Strs("vigil.watched", watched).Send()

	errc := make(chan error, 1)
	go func() { errc <- readLoop(s, set, opt) }()
	select {
	case <-ctx.Done():
		s.Close()
		<-errc
		opt.Out.Info().Str("event.action", "agent-stopped").Send()
		return nil
	case err := <-errc:
		return err
	}
}

func readLoop(s *sensor.Sensor, set *watch.Set, opt Options) error {
	boot := bootTime()
	for {
		e, err := s.Read()
		if errors.Is(err, sensor.ErrClosed) {
			return nil
		}
		if err != nil {
			opt.Log.Warn().Err(err).Msg("bad record")
			continue
		}
		path := e.Path
		if ent, ok := set.Get(e.WatchID); ok {
			path = ent.Path
			if e.Match == sensor.MatchName {
				if err := set.Follow(e.WatchID, e.File); err != nil {
					opt.Log.Warn().Err(err).Msg("following replaced file")
				}
			}
		}
		opt.Out.Info().
			Time("@timestamp", boot.Add(time.Duration(e.BootNS))).
			Str("event.action", e.Op.String()).
			Str("file.path", path).
			Uint64("file.inode", e.File.Ino).
			Uint64("file.device", e.File.Dev).
			Uint32("process.pid", e.Proc.PID).
			Uint32("process.ppid", e.Proc.PPID).
			Str("process.name", e.Proc.Comm).
			Str("process.executable", e.Proc.Exe).
			Uint32("user.id", e.Proc.UID).
			Uint32("user.effective.id", e.Proc.EUID).
			Uint32("user.audit.id", e.Proc.AUID).
			Uint64("process.cgroup.id", e.Proc.CgroupID).
			Str("vigil.hook", e.Hook.String()).
			Str("vigil.match", e.Match.String()).
			Send()
	}
}
