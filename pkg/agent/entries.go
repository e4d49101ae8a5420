package agent

import (
	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/scan"
)

// startupFileType is file.type of a startup record: the observed entry's
// type (the recorded one for a deletion). ECS names file, dir and symlink;
// the others are fifo, socket, char-device and block-device.
func startupFileType(f *scan.Finding) string {
	for _, a := range []*scan.Attrs{f.New, f.Old} {
		if a != nil && a.Type != "" {
			return a.Type
		}
	}
	return scan.TypeFile
}

// entryFields adds what a startup record says of a non-regular entry and of
// the mount the path is seen through: vigil.symlink (old_target,
// new_target) when a symlink appeared, went or points elsewhere,
// vigil.device (type, major, minor, and old_major, old_minor when the
// numbers changed) for a device node, vigil.mount (change, description,
// old, new) when the path is seen through another mount.
func entryFields(v *zerolog.Event, f *scan.Finding) {
	var oldT, newT string
	var oldLink, newLink bool
	if o := f.Old; o != nil && o.Type == scan.TypeSymlink {
		oldT, oldLink = o.Target, true
	}
	if n := f.New; n != nil && n.Type == scan.TypeSymlink {
		newT, newLink = n.Target, true
	}
	if (oldLink || newLink) && (oldT != newT || oldLink != newLink) {
		d := zerolog.Dict()
		if oldLink {
			d.Str("old_target", oldT)
		}
		if newLink {
			d.Str("new_target", newT)
		}
		v.Dict("symlink", d)
	}
	dev := f.New
	if dev == nil || dev.Major == nil {
		dev = f.Old
	}
	if dev != nil && dev.Major != nil {
		d := zerolog.Dict().Str("type", dev.Type).Uint32("major", *dev.Major).Uint32("minor", *dev.Minor)
		if o := f.Old; o != nil && o.Major != nil && dev != o && (*o.Major != *dev.Major || *o.Minor != *dev.Minor) {
			d.Uint32("old_major", *o.Major).Uint32("old_minor", *o.Minor)
		}
		v.Dict("device", d)
	}
	if m := f.Mount; m != nil {
		d := zerolog.Dict().Str("change", m.Action).Str("description", m.Line())
		if m.Old != nil {
			d.Interface("old", m.Old)
		}
		if m.New != nil {
			d.Interface("new", m.New)
		}
		v.Dict("mount", d)
	}
}
