// Package pkgmgr knows the package managers: which process names the kernel
// marks as one (the lineage of issue 17, bpf/common.bpf.h), and how a
// change made under one is checked against its package database (dpkg's
// info/*.list, *.md5sums and status; rpm's Packages database).
package pkgmgr

import "fmt"

// DB is the package database a manager installs from.
type DB string

const (
	DBDpkg DB = "dpkg"
	DBRpm  DB = "rpm"
	// DBAny is a front end that drives whichever database the host has
	// (PackageKit).
	DBAny DB = "any"
)

// Manager is one package manager vigil marks in the kernel.
type Manager struct {
	// ID is the value of its comm in the kernel map pkg_comms: 1..255,
	// and what records carry in pkg_mgr.
	ID uint8
	// Comm is the task name the kernel sets at exec (the executable's
	// base name, cut to 15 bytes).
	Comm string
	// Name is the manager's name in records (vigil.package.manager).
	Name string
	DB   DB
}

// Managers is the table: one place for every id, comm and name. An id is
// never reused for another manager.
var Managers = []Manager{
	{1, "dpkg", "dpkg", DBDpkg},
	{2, "rpm", "rpm", DBRpm},
	{3, "apt", "apt", DBDpkg},
	{4, "apt-get", "apt-get", DBDpkg},
	{5, "aptitude", "aptitude", DBDpkg},
	{6, "dnf", "dnf", DBRpm},
	{7, "yum", "yum", DBRpm},
	{8, "microdnf", "microdnf", DBRpm},
	{9, "unattended-upgr", "unattended-upgrades", DBDpkg},
	{10, "packagekitd", "packagekit", DBAny},
	{11, "zypper", "zypper", DBRpm},
	{12, "dnf5", "dnf5", DBRpm},
}

// CommLen is the kernel's task name size, with its NUL.
const CommLen = 16

// ByID returns the manager with id, or false.
func ByID(id uint8) (Manager, bool) {
	for _, m := range Managers {
		if m.ID == id {
			return m, true
		}
	}
	return Manager{}, false
}

// CommKey is m's key in pkg_comms: its comm, zero padded, as
// bpf_get_current_comm gives it.
func (m Manager) CommKey() ([CommLen]byte, error) {
	var k [CommLen]byte
	if m.Comm == "" || len(m.Comm) > CommLen-1 {
		return k, fmt.Errorf("manager %s: comm %q: want 1 to %d bytes", m.Name, m.Comm, CommLen-1)
	}
	copy(k[:], m.Comm)
	return k, nil
}
