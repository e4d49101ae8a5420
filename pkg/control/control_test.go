package control

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/spool"
)

func TestStatusOverSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "vigil")
	path := filepath.Join(dir, "vigil.sock")
	running := false
	stats := func() (agent.Stats, bool) {
		if !running {
			return agent.Stats{}, false
		}
		return agent.Stats{PID: 7, Started: time.Now().Add(-time.Minute), Config: []string{"/etc/vigil/vigil.toml"},
			Sensor: sensor.Info{Object: "tp", HookTyp: "tracepoint", Kernel: "6.18"},
			Watch:  agent.WatchStats{Rules: 2, Files: 5, MapEntries: 9, MapCapacity: 64},
			Live:   3, Records: []agent.RecordCount{{Action: "modified", Kind: "event", N: 3}},
			Reloads:    map[string]uint64{"failure": 1},
			LastReload: &agent.ReloadResult{At: time.Now(), Errors: []string{"/etc/vigil/vigil.toml:3: watch.0.path: missing"}},
			HostID:     "3d1219c7c4c5404aaa1f6d2a48adfda4", Sequence: 41,
			Spools: []output.SpoolStats{{Output: "relp:relp://relay:2514", OldestAge: 2 * time.Second,
				Stats:     spool.Stats{Depth: 4, Bytes: 900, Dropped: 1, DroppedBy: map[string]uint64{"size": 1}},
				Delivered: 10, Retried: 2, LastError: "connection refused"}}}, true
	}
	srv, err := Listen(path, stats, "v9", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", st.Mode().Perm())
	}
	if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
		t.Errorf("directory made %v, want 0700", d.Mode().Perm())
	}

	r, err := Query(path, time.Second)
	if err != nil || r.State != "starting" || r.Stats != nil || r.Version != "v9" {
		t.Fatalf("while starting: %+v, %v", r, err)
	}
	running = true
	r, err = Query(path, time.Second)
	if err != nil || r.State != "running" || r.Stats == nil || r.Stats.PID != 7 || r.Stats.Watch.MapEntries != 9 {
		t.Fatalf("running: %+v, %v", r, err)
	}
	var b strings.Builder
	Format(&b, r)
	for _, want := range []string{"is running (pid 7", "2 rules, 5 files", "9 of 64 inode entries",
		"3 written", "FAILED, the previous configuration runs: /etc/vigil/vigil.toml:3: watch.0.path: missing",
		"host:         id 3d1219c7c4c5404aaa1f6d2a48adfda4, last event.sequence 41",
		"spool:        relp:relp://relay:2514: 4 records (900 bytes) waiting, oldest 2s; 10 delivered, 2 retried, 1 dropped (1 full, 0 too old); not connected: connection refused"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}

	// A second agent on the same socket is refused; the first keeps it.
	if _, err := Listen(path, stats, "v9", zerolog.Nop()); !errors.Is(err, ErrInUse) {
		t.Errorf("second listener: %v, want ErrInUse", err)
	}
	// A bad request gets a clear error, not a hang.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("{\"command\":\"reboot\"}\n"))
	buf := make([]byte, 256)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.Contains(string(buf[:n]), `unknown command \"reboot\"`) {
		t.Errorf("bad command answered %q", buf[:n])
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := Query(path, time.Second); !errors.Is(err, ErrNoAgent) {
		t.Errorf("no agent: %v, want ErrNoAgent", err)
	}
}

// TestStaleSocketReplaced: a killed agent's socket file does not stop the
// next one, and a non-socket at the path is refused.
func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays, nothing answers
	if _, err := Query(path, time.Second); !errors.Is(err, ErrNoAgent) {
		t.Errorf("stale socket: %v, want ErrNoAgent", err)
	}
	srv, err := Listen(path, func() (agent.Stats, bool) { return agent.Stats{}, false }, "v", zerolog.Nop())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	srv.Close()

	file := filepath.Join(t.TempDir(), "not-a-socket")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Listen(file, nil, "v", zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a regular file at the path: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Error("the file at the path was touched")
	}
}
