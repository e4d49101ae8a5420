package sensor

import "fmt"

// EntryCount counts the inode entries in the kernel's watch map.
func (s *Sensor) EntryCount() (int, error) {
	var k Key
	var v watchValue
	n := 0
	if err := s.watch.ForEach(&k, &v, func() { n++ }); err != nil {
		return 0, fmt.Errorf("counting watch entries: %w", err)
	}
	return n, nil
}

// RingFill returns the ring buffer's bytes written and not yet read, and
// its size.
func (s *Sensor) RingFill() (used, size int) {
	return s.rd.AvailableBytes(), s.rd.BufferSize()
}
