// Package watch turns configured paths into the sensor's in-kernel watch
// set and keeps it in step with what the sensor reports.
package watch

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Kernel is the part of the sensor the watch set drives.
type Kernel interface {
	WatchInode(k sensor.Key, id uint64, flags uint32) error
	UnwatchInode(k sensor.Key) error
	WatchName(dir sensor.Key, name string, id uint64) error
}

// Entry is one watched path.
type Entry struct {
	ID   uint64
	Path string
	// Key is the inode now at Path; zero while the path does not exist.
	Key sensor.Key
	// Dir is Path's parent directory.
	Dir sensor.Key
}

// Set is the watch set.
type Set struct {
	mu      sync.Mutex
	k       Kernel
	entries map[uint64]*Entry
	byKey   map[sensor.Key]*Entry
	nextID  uint64
}

// New returns an empty set driving k.
func New(k Kernel) *Set {
	return &Set{k: k, entries: map[uint64]*Entry{}, byKey: map[sensor.Key]*Entry{}, nextID: 1}
}

// AddFile watches one file path: its inode, and its name in its parent
// directory, so that a replacement by rename is followed in the kernel.
func (s *Set) AddFile(path string) (*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path = filepath.Clean(path)
	dirKey, _, err := sensor.KeyOf(filepath.Dir(path), false)
	if err != nil {
		return nil, fmt.Errorf("watching %s: parent directory: %w", path, err)
	}
	e := &Entry{ID: s.nextID, Path: path, Dir: dirKey}
	s.nextID++
	if err := s.k.WatchInode(dirKey, 0, sensor.WatchNames); err != nil {
		return nil, err
	}
	if err := s.k.WatchName(dirKey, filepath.Base(path), e.ID); err != nil {
		return nil, err
	}
	if k, _, err := sensor.KeyOf(path, false); err == nil {
		e.Key = k
		if err := s.k.WatchInode(k, e.ID, sensor.WatchFile); err != nil {
			return nil, err
		}
		s.byKey[k] = e
	}
	s.entries[e.ID] = e
	return e, nil
}

// Get returns the entry with an id.
func (s *Set) Get(id uint64) (*Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	return e, ok
}

// Follow records that the entry's path now holds inode k (the kernel has
// already added k when it matched by name): the old inode leaves the map.
func (s *Set) Follow(id uint64, k sensor.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok || e.Key == k {
		return nil
	}
	old := e.Key
	e.Key = k
	s.byKey[k] = e
	if old != (sensor.Key{}) {
		delete(s.byKey, old)
		if err := s.k.UnwatchInode(old); err != nil {
			return err
		}
	}
	return s.k.WatchInode(k, e.ID, sensor.WatchFile)
}
