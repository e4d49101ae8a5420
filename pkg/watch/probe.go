package watch

import (
	"github.com/hashicorp/go-multierror"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Probe watches a private directory tree under id, outside the rules (the
// agent's self-test): the kernel reports what happens in it with that id,
// and nothing of it enters the set. release ends the probe: the directory's
// entry goes, and so do the entries the kernel made for the files it
// followed there (left behind, a later file that reuses a freed probe
// file's inode number would match them and be read as the probe's).
func (s *Set) Probe(dir string, id uint64) (release func() error, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, err := s.k.WatchTree(dir, id)
	if err != nil {
		return nil, err
	}
	return func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		var errs *multierror.Error
		if err := s.k.UnwatchDir(dir, key); err != nil {
			errs = multierror.Append(errs, err)
		}
		if l, ok := s.k.(lister); ok {
			ents, err := l.Entries()
			if err != nil {
				return multierror.Append(errs, err)
			}
			for _, e := range ents {
				if e.ID == id {
					if err := s.k.UnwatchInode(e.Key); err != nil {
						errs = multierror.Append(errs, err)
					}
				}
			}
		}
		return errs.ErrorOrNil()
	}, nil
}

// Restore puts a watched file's inode entry back in the kernel map (the
// tamper check found it removed behind vigil's back).
func (s *Set) Restore(f *File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.k.WatchInode(f.Key, f.Target, sensor.WatchFile)
}
