//go:build privileged

package agent_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/spool"
)

// TestSequenceAndHostIDAcrossRestart: event.sequence goes on from where the
// last run stopped, and host.id stays the same; "generated" ids live in the
// state directory.
func TestSequenceAndHostIDAcrossRestart(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	os.WriteFile(conf, []byte("a\n"), 0o644)
	cfg, err := config.Parse("seq.toml", []byte(fmt.Sprintf("[agent]\nstate_dir = %q\nhost_id = \"generated\"\n[output]\nstdout = false\n[[watch]]\npath = %q\nkind = \"diff\"\n",
		filepath.Join(dir, "state"), conf)))
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	var id string
	for run := 0; run < 2; run++ {
		r, stop := runAgent(t, cfg)
		sh(t, "echo b >> "+conf)
		r.wait(t, 0, "modified", forPath(conf, "modified"))
		stop()
		all := r.since(0, func(rec) bool { return true })
		for i, x := range all {
			q, _ := x.get("event.sequence").(float64)
			if q != last+1 {
				t.Errorf("run %d record %d (%s): event.sequence %v, want %v", run, i, x.s("event.action"), q, last+1)
			}
			last = q
			if id == "" {
				id = x.s("host.id")
			}
			if x.s("host.id") != id {
				t.Errorf("run %d: host.id %q, want %q", run, x.s("host.id"), id)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "state", "host.id"))
	if err != nil || strings.TrimSpace(string(b)) != id || len(id) != 32 {
		t.Errorf("host.id %q, state_dir/host.id %q (%v)", id, b, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "state", "sequence")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("sequence file: %v %v", st, err)
	}
}

// TestSpoolDroppedReported: a network output whose receiver is down and
// whose spool is full drops its oldest records; the agent reports it in a
// spool-dropped record (on every output), with the count and the
// sequence numbers dropped.
func TestSpoolDroppedReported(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	os.WriteFile(conf, []byte("a\n"), 0o644)
	cfg, err := config.Parse("full.toml", []byte(fmt.Sprintf("[agent]\nstate_dir = %q\nheartbeat = \"0s\"\n[coalesce]\nwindow = \"0s\"\n[output]\nstdout = false\n[[watch]]\npath = %q\nkind = \"diff\"\n",
		filepath.Join(dir, "state"), conf)))
	if err != nil {
		t.Fatal(err)
	}
	// A RELP receiver that is not there: a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr, err := output.NewRELP(output.RELPOptions{Address: "relp://" + addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	spoolPath := filepath.Join(dir, "state", "spool", "relp.db")
	sp, err := output.NewSpooled(tr, output.SpoolOptions{Path: spoolPath, MaxBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	recs := newRecords()
	out := output.NewFanout(output.Stream{W: recs, Label: "records"}, sp)
	r, stop := startAgentOut(t, agent.Options{Config: cfg}, out, recs)
	// About 1 KiB of record per change: far more than the spool holds.
	for i := 0; i < 20; i++ {
		sh(t, fmt.Sprintf("echo line%d >> %s", i, conf))
		time.Sleep(20 * time.Millisecond)
	}
	d := r.wait(t, 0, "spool-dropped", func(x rec) bool { return x.s("event.action") == "spool-dropped" })
	st := sp.Stats()
	stop()
	sp.Close()
	if d.s("event.kind") != "alert" || d.s("vigil.spool.output") != "relp:relp://"+addr {
		t.Errorf("spool-dropped record: %s", d)
	}
	n, _ := d.get("vigil.spool.dropped").(float64)
	first, _ := d.get("vigil.spool.first_sequence").(float64)
	lastQ, _ := d.get("vigil.spool.last_sequence").(float64)
	size, _ := d.get("vigil.spool.dropped_size").(float64)
	if n < 1 || first != 1 || lastQ < first || size < n {
		t.Errorf("spool-dropped counts: %s", d)
	}
	if st.Dropped == 0 || st.DroppedBy["size"] != st.Dropped || st.Connected {
		t.Errorf("spool stats: %+v", st)
	}
	// The spool holds the newest records, the spool-dropped ones among
	// them unless later ones pushed them out; never the dropped ones.
	s, err := spool.Open(spoolPath, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, _ := s.Peek(1000, 1<<20)
	if len(items) == 0 {
		t.Fatal("the spool is empty")
	}
	for _, it := range items {
		if strings.Contains(string(it.Data), `"sequence":1,`) {
			t.Errorf("the first record, dropped, is still in the spool")
		}
	}
	if !strings.Contains(string(items[len(items)-1].Data), `"agent-stopped"`) {
		t.Errorf("the newest record in the spool is not agent-stopped: %s", items[len(items)-1].Data)
	}
}
