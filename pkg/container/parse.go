// Package container tells which container a process is in from its cgroup:
// an id -> cgroup path cache of the default (v2) hierarchy, seeded by one
// walk of cgroupfs and kept current by the kernel's cgroup records, and a
// parser that reads the container id and runtime from a path as the
// runtimes name their cgroups.
package container

import (
	"strings"
)

// Runtimes, as container.runtime gives them.
const (
	Docker     = "docker"
	Containerd = "containerd"
	CRIO       = "cri-o"
	Podman     = "podman"
	Nspawn     = "systemd-nspawn"
	Runc       = "runc"
)

// Info is what a cgroup path says about the container a process is in.
// The zero Info: not in a container vigil recognizes.
type Info struct {
	// ID is the container's id (a runtime's 64 hex digits), or, for
	// systemd-nspawn, the machine's name.
	ID string
	// Runtime is one of the constants above; "" when the path shows a
	// container id but not which runtime made it.
	Runtime string
	// PodUID is the Kubernetes pod's uid, from a kubepods slice or
	// directory; it may be set without ID (a pod's own cgroup).
	PodUID string
}

// Known says whether the path named a container or a pod.
func (i Info) Known() bool { return i.ID != "" || i.PodUID != "" }

// scopes are the systemd units the runtimes put a container in with the
// systemd cgroup driver: <prefix><id>.scope.
// Every runtime but runc names a container by 64 hex digits; runc takes
// the id its caller gives.
var scopes = []struct {
	prefix, runtime string
	anyID           bool
}{
	{"docker-", Docker, false},
	{"cri-containerd-", Containerd, false},
	{"crio-", CRIO, false},
	{"libpod-", Podman, false},
	{"runc-", Runc, true},
}

// cgroupfsParents are the directories the runtimes put a container's
// cgroup under with the cgroupfs driver: <parent>/<id>.
var cgroupfsParents = map[string]string{
	"docker":        Docker,
	"libpod_parent": Podman,
}

// Parse reads the container a cgroup path names, innermost first: a
// container's own cgroup may have children (systemd-nspawn's payload, a
// container's sub-cgroups), and a container may run inside another.
//
//	/system.slice/docker-<id>.scope                       docker (systemd driver)
//	/docker/<id>                                          docker (cgroupfs driver)
//	/system.slice/containerd.service/...cri-containerd-<id>.scope  containerd (CRI)
//	/machine.slice/libpod-<id>.scope, /libpod_parent/libpod-<id>   podman
//	/machine.slice/machine-<name>.scope                   systemd-nspawn (registered with machined)
//	/machine.slice/systemd-nspawn@<name>.service          systemd-nspawn (its template unit)
//	/system.slice/runc-<id>.scope                         runc --systemd-cgroup
//	/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/...   Kubernetes (systemd driver)
//	/kubepods/<qos>/pod<uid>/<id>                         Kubernetes (cgroupfs driver): runtime unknown
//
// A component of exactly 64 hex digits that nothing above claims is a
// container id of an unknown runtime (runc's own default, a container's
// id as its cgroup's name, is one of these: Resolve asks runc's state
// directory).
func Parse(path string) Info {
	var info Info
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if info.PodUID == "" {
			if uid, ok := podUID(p); ok {
				info.PodUID = uid
			}
		}
		if info.ID != "" {
			continue
		}
		if id, rt, ok := component(p, parts[:i]); ok {
			info.ID, info.Runtime = id, rt
		}
	}
	return info
}

// component reads one path component (with the components above it).
func component(p string, above []string) (id, runtime string, ok bool) {
	if name, ok := strings.CutSuffix(p, ".scope"); ok {
		// libpod-conmon-<id>.scope is podman's monitor, not the container.
		if strings.HasPrefix(name, "libpod-conmon-") {
			return "", "", false
		}
		for _, s := range scopes {
			if id, ok := strings.CutPrefix(name, s.prefix); ok && (isHexID(id) || s.anyID && id != "") {
				return id, s.runtime, true
			}
		}
		if m, ok := strings.CutPrefix(name, "machine-"); ok && m != "" && inMachineSlice(above) {
			return unescapeUnit(m), Nspawn, true
		}
		return "", "", false
	}
	if name, ok := strings.CutSuffix(p, ".service"); ok {
		if m, ok := strings.CutPrefix(name, "systemd-nspawn@"); ok && m != "" {
			return unescapeUnit(m), Nspawn, true
		}
		return "", "", false
	}
	if id, ok := strings.CutPrefix(p, "libpod-"); ok && isHexID(id) {
		return id, Podman, true
	}
	if isHexID(p) {
		if len(above) > 0 {
			if rt, ok := cgroupfsParents[above[len(above)-1]]; ok {
				return p, rt, true
			}
		}
		return p, "", true
	}
	return "", "", false
}

// inMachineSlice: machined's scopes are in machine.slice (or a slice
// below it).
func inMachineSlice(above []string) bool {
	for _, a := range above {
		if a == "machine.slice" || strings.HasPrefix(a, "machine-") && strings.HasSuffix(a, ".slice") {
			return true
		}
	}
	return false
}

// podUID reads kubepods-<qos>-pod<uid>.slice (systemd driver: the uid's
// dashes written as underscores), kubepods-pod<uid>.slice (guaranteed QoS)
// or pod<uid> (cgroupfs driver).
func podUID(p string) (string, bool) {
	if name, ok := strings.CutSuffix(p, ".slice"); ok && strings.HasPrefix(name, "kubepods-") {
		i := strings.LastIndex(name, "-pod")
		if i < 0 {
			return "", false
		}
		uid := strings.ReplaceAll(name[i+len("-pod"):], "_", "-")
		return uid, isUID(uid)
	}
	if uid, ok := strings.CutPrefix(p, "pod"); ok && isUID(uid) {
		return uid, true
	}
	return "", false
}

// isUID: a Kubernetes uid, 8-4-4-4-12 hex digits.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c rune) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// unescapeUnit undoes systemd's unit name escaping (\xNN), as machined
// writes a machine name with a dash: machine-my\x2dbox.scope.
func unescapeUnit(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && s[i+1] == 'x' {
			if v, ok := hexByte(s[i+2 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hexByte(s string) (byte, bool) {
	var v byte
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}
