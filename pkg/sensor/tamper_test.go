//go:build privileged

package sensor_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// An untouched sensor passes both checks: no false alarm.
func TestTamperCleanSensor(t *testing.T) {
	needSensor(t)
	if len(sens.Attached()) != len(sens.Info().Hooks) {
		t.Fatalf("attached %d, hooks %d", len(sens.Attached()), len(sens.Info().Hooks))
	}
	for _, a := range sens.Attached() {
		if a.ProgID == 0 {
			t.Errorf("%s: no program id recorded", a.Hook)
		}
		t.Logf("%s: prog %d link %d (%s)", a.Hook, a.ProgID, a.LinkID, a.LinkType)
	}
	found, err := sens.CheckAttached()
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("false alarm: %+v", found)
	}
	for i := 0; i < 3; i++ {
		found, err = sens.Canary(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if len(found) > 0 {
			t.Fatalf("canary false alarm: %+v", found)
		}
	}
}

// An attacker with CAP_SYS_ADMIN opens vigil's links by ID and detaches
// them. Where the kernel refuses (raw tracepoint and perf-event links have
// no detach), the hooks must still run; where it accepts, the canary must
// see the hook go silent.
func TestTamperDetachByID(t *testing.T) {
	needSensor(t)
	var tried int
	for _, a := range sens.Attached() {
		if a.LinkID == 0 {
			continue // kprobes through perf event ioctls (before 5.15): no link to open
		}
		lk, err := link.NewFromID(a.LinkID)
		if err != nil {
			t.Fatalf("opening link %d by id: %v", a.LinkID, err)
		}
		derr := lk.Detach()
		lk.Close()
		tried++
		t.Logf("%s (%s link %d): detach: %v", a.Hook, a.LinkType, a.LinkID, derr)
		if derr == nil {
			found, err := sens.Canary(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if !hasCheck(found, sensor.CheckHookSilent) {
				t.Fatalf("%s detached, canary saw nothing: %+v", a.Hook, found)
			}
			t.Fatalf("%s: the kernel let another process detach vigil's link (detected: %+v); "+
				"the rest of this suite would run blind", a.Hook, found)
		}
		if !errors.Is(derr, ebpf.ErrNotSupported) {
			t.Fatalf("%s: detach failed otherwise than not-supported: %v", a.Hook, derr)
		}
	}
	t.Logf("%d links tried", tried)
	found, err := sens.Canary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("after refused detaches: %+v", found)
	}
}

// A kprobe sensor is disarmed by switching kprobes off system-wide: the
// canary must report the silent hooks and name the switch.
func TestTamperKprobesDisarmed(t *testing.T) {
	needSensor(t)
	if sens.Info().HookTyp != loader.HooksKprobe {
		// The tracepoint object has no kprobes to disarm; its tampering is
		// covered by TestTamperLinkClosed.
		t.Logf("object %s attaches no kprobes: nothing to disarm", sens.Info().Object)
		return
	}
	const sw = "/sys/kernel/debug/kprobes/enabled"
	old, err := os.ReadFile(sw)
	if err != nil {
		t.Fatalf("a kprobe kernel without %s (debugfs mounted?): %v", sw, err)
	}
	if err := os.WriteFile(sw, []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	found, cerr := sens.Canary(t.TempDir())
	if err := os.WriteFile(sw, old, 0); err != nil {
		t.Fatalf("restoring %s: %v", sw, err)
	}
	if cerr != nil {
		t.Fatal(cerr)
	}
	t.Logf("found: %+v", found)
	if !hasCheck(found, sensor.CheckKprobesDisabled) || !hasCheck(found, sensor.CheckHookSilent) {
		t.Fatalf("disarmed kprobes not reported: %+v", found)
	}
	for _, f := range found {
		if f.Check == sensor.CheckHookSilent && !strings.HasPrefix(f.Hook, "kprobe/") {
			t.Errorf("non-kprobe hook reported silent: %+v", f)
		}
	}
	found, err = sens.Canary(t.TempDir())
	if err != nil || len(found) > 0 {
		t.Fatalf("after re-arming: %+v %v", found, err)
	}
}

// A link gone from the kernel (here: a second sensor's link closed under
// it, the one way to make a raw tracepoint or perf-event link disappear
// while its program lives) is reported by both checks.
func TestTamperLinkClosed(t *testing.T) {
	needSensor(t)
	s2, err := sensor.New(loader.Options{Log: zerolog.Nop(), Object: sens.Info().Object})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var victim loader.Attachment
	for _, a := range s2.Attached() {
		if a.LinkID != 0 {
			if _, ok := map[string]bool{"fentry/vfs_write": true, "kprobe/vfs_write": true, "tp_btf/sys_exit": true, "tp/raw_syscalls/sys_exit": true}[a.Hook]; ok {
				victim = a
			}
		}
	}
	if victim.Hook == "" {
		t.Logf("object %s: no bpf_link ids (kprobes through perf event ioctls); the canary covers it", s2.Info().Object)
		victim = s2.Attached()[0]
		for _, a := range s2.Attached() {
			if a.Hook == "kprobe/vfs_write" || a.Hook == "fentry/vfs_write" {
				victim = a
			}
		}
	}
	if err := victim.Link().Close(); err != nil {
		t.Fatal(err)
	}
	found, err := s2.CheckAttached()
	if err != nil {
		t.Fatal(err)
	}
	if victim.LinkID != 0 && !hasCheck(found, sensor.CheckLinkMissing) {
		t.Fatalf("closed link %d not reported: %+v", victim.LinkID, found)
	}
	found, err = s2.Canary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !hasCheck(found, sensor.CheckHookSilent) {
		t.Fatalf("closed %s not reported silent: %+v", victim.Hook, found)
	}
	t.Logf("found: %+v", found)
}

func hasCheck(found []sensor.Tamper, check sensor.TamperCheck) bool {
	for _, f := range found {
		if f.Check == check {
			return true
		}
	}
	return false
}
