package pkgmgr

import "testing"

func TestManagersTable(t *testing.T) {
	ids := map[uint8]bool{}
	comms := map[string]bool{}
	for _, m := range Managers {
		if m.ID == 0 {
			t.Errorf("%s: id 0 means no manager in records", m.Name)
		}
		if ids[m.ID] || comms[m.Comm] {
			t.Errorf("%s: id %d or comm %q used twice", m.Name, m.ID, m.Comm)
		}
		ids[m.ID], comms[m.Comm] = true, true
		k, err := m.CommKey()
		if err != nil {
			t.Error(err)
			continue
		}
		if k[CommLen-1] != 0 {
			t.Errorf("%s: key not NUL-terminated", m.Name)
		}
		if got, ok := ByID(m.ID); !ok || got != m {
			t.Errorf("ByID(%d) = %+v, %v", m.ID, got, ok)
		}
		if m.DB != DBDpkg && m.DB != DBRpm && m.DB != DBAny {
			t.Errorf("%s: database %q", m.Name, m.DB)
		}
	}
	if _, ok := ByID(0); ok {
		t.Error("ByID(0) found a manager")
	}
	if _, err := (Manager{Name: "x", Comm: "unattended-upgrade"}).CommKey(); err == nil {
		t.Error("a 18-byte comm was taken")
	}
}
