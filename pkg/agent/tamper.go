package agent

import (
	"path/filepath"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// TamperStats counts the periodic tamper checks (Stats.Tamper).
type TamperStats struct {
	Checks   uint64 `json:"checks"`
	Findings uint64 `json:"findings"`
	// Repaired counts watch entries put back in the kernel map.
	Repaired uint64 `json:"repaired"`
	// Errors counts checks that could not run in full.
	Errors     uint64    `json:"errors"`
	LastCheck  time.Time `json:"last_check"`
	Heartbeats uint64    `json:"heartbeats"`
}

// tamperState is what the periodic tamper check keeps between runs. The
// counters are read beside the pipeline (Stats): they change under a.mu.
type tamperState struct {
	checks   uint64 // tamper checks run
	findings uint64 // tamper findings reported
	repaired uint64 // watch entries put back
	errors   uint64 // checks that could not run
	last     time.Time
	beats    uint64 // heartbeat records written
	// missing counts, per watched inode, the consecutive checks that found
	// its watch entry gone from the kernel map.
	missing map[sensor.Key]int
	// active are the findings of the last check, to report each once.
	active map[string]bool
}

// checkTamper compares the kernel side with what vigil loaded and seeded:
// programs and links still attached and running (sensor.CheckAttached,
// sensor.Canary), and every watched file's inode entry still in the
// kernel's map. A watch entry found gone twice in a row, while the file
// still has that inode, was deleted by someone else: it is put back and
// reported. New findings are written as one tamper-detected record.
func (a *Agent) checkTamper() {
	t := &a.tamper
	var found []sensor.Tamper
	var errs uint64
	if f, err := a.sens.CheckAttached(); err != nil {
		errs++
		a.opt.Log.Warn().Err(err).Msg("tamper check: programs and links")
	} else {
		found = append(found, f...)
	}
	if f, err := a.sens.Canary(filepath.Join(a.cfg.Agent.StateDir, "canary")); err != nil {
		errs++
		a.opt.Log.Warn().Err(err).Msg("tamper check: canary")
	} else {
		found = append(found, f...)
	}
	found = append(found, a.checkEntries()...)
	active := map[string]bool{}
	var fresh []sensor.Tamper
	for _, f := range found {
		k := string(f.Check) + "|" + f.Hook + "|" + f.Detail
		active[k] = true
		if !t.active[k] || f.Check == sensor.CheckWatchEntryMissing {
			fresh = append(fresh, f)
		}
	}
	t.active = active
	a.mu.Lock()
	t.checks++
	t.last = time.Now()
	if errs > 0 {
		t.errors++
	}
	t.findings += uint64(len(fresh))
	a.mu.Unlock()
	if len(fresh) > 0 {
		a.rec.tamper(fresh)
	}
}

// checkEntries finds watched files whose inode entry left the kernel map
// behind vigil's back, and puts them back.
func (a *Agent) checkEntries() []sensor.Tamper {
	t := &a.tamper
	if t.missing == nil {
		t.missing = map[sensor.Key]int{}
	}
	var out []sensor.Tamper
	seen := map[sensor.Key]bool{}
	for _, f := range a.set.Files() {
		if f.Key.Ino == 0 || seen[f.Key] {
			continue
		}
		seen[f.Key] = true
		if _, ok, err := a.sens.Lookup(f.Key); err != nil || ok {
			delete(t.missing, f.Key)
			continue
		}
		// The file may have been replaced a moment ago and its record not
		// read yet: only an entry missing while the path still has the
		// inode vigil knows counts.
		if k, _, err := sensor.KeyOf(f.Path, true); err != nil || k != f.Key {
			delete(t.missing, f.Key)
			continue
		}
		t.missing[f.Key]++
		if t.missing[f.Key] < 2 {
			continue
		}
		delete(t.missing, f.Key)
		detail := "the watch entry of " + f.Path + " (inode " + f.Key.String() + ") was removed from the kernel map"
		if err := a.set.Restore(&f); err != nil {
			detail += "; putting it back failed: " + err.Error()
		} else {
			a.mu.Lock()
			t.repaired++
			a.mu.Unlock()
			detail += "; put back"
		}
		out = append(out, sensor.Tamper{Check: sensor.CheckWatchEntryMissing, Detail: detail})
	}
	for k := range t.missing {
		if !seen[k] {
			delete(t.missing, k)
		}
	}
	return out
}

// snapshot copies the counters (a.mu held).
func (t *tamperState) snapshot() TamperStats {
	return TamperStats{Checks: t.checks, Findings: t.findings, Repaired: t.repaired, Errors: t.errors,
		LastCheck: t.last, Heartbeats: t.beats}
}

// heartbeat writes the liveness record.
func (a *Agent) heartbeat(started time.Time) {
	dropped, lost := a.loss.totals()
	a.mu.Lock()
	live, recovered := a.live, a.recovered
	a.tamper.beats++
	ts := a.tamper.snapshot()
	a.mu.Unlock()
	var hits, emitted uint64
	if c, err := a.sens.Counters(); err == nil {
		for _, v := range c.Hits {
			hits += v
		}
		for _, v := range c.Emitted {
			emitted += v
		}
	}
	entries := -1
	if ents, err := a.sens.Entries(); err == nil {
		entries = len(ents)
	}
	hb := heartbeatInfo{
		Uptime: time.Since(started), Live: live, Recovered: recovered,
		LostKernel: lost, LostQueue: dropped, Hits: hits, Emitted: emitted,
		Files: len(a.set.Files()), Entries: entries, Capacity: a.sens.Capacity(),
		SelfTest: a.self.ok, Tamper: ts, Caps: capNames(),
	}
	a.rec.heartbeat(hb)
}

type heartbeatInfo struct {
	Uptime                time.Duration
	Live, Recovered       uint64
	LostKernel, LostQueue uint64
	Hits, Emitted         uint64
	Files, Entries        int
	Capacity              uint32
	SelfTest              bool
	Tamper                TamperStats
	Caps                  []string
}

func (r *recorder) heartbeat(h heartbeatInfo) {
	last := ""
	if !h.Tamper.LastCheck.IsZero() {
		last = h.Tamper.LastCheck.UTC().Format(time.RFC3339Nano)
	}
	caps := h.Caps
	if caps == nil {
		caps = []string{}
	}
	r.begin(time.Now(), "heartbeat", []string{"process"}, []string{"info"}, "state").
		Dict("process", zerolog.Dict().Int("pid", pid()).Float64("uptime", h.Uptime.Seconds())).
		Dict("vigil", zerolog.Dict().Dict("heartbeat", zerolog.Dict().
			Dict("records", zerolog.Dict().Uint64("live", h.Live).Uint64("recovered", h.Recovered)).
			Dict("lost", zerolog.Dict().Uint64("kernel", h.LostKernel).Uint64("queue", h.LostQueue)).
			Dict("kernel", zerolog.Dict().Uint64("hook_hits", h.Hits).Uint64("emitted", h.Emitted)).
			Dict("watch", zerolog.Dict().Int("files", h.Files).Int("entries", h.Entries).Uint32("capacity", h.Capacity)).
			Bool("self_test_ok", h.SelfTest).
			Dict("tamper", zerolog.Dict().Uint64("checks", h.Tamper.Checks).Uint64("findings", h.Tamper.Findings).
				Uint64("repaired", h.Tamper.Repaired).Uint64("errors", h.Tamper.Errors).Str("last_check", last)).
			Strs("capabilities", caps))).
		Send()
}

// tamper writes a critical record for tamper findings.
func (r *recorder) tamper(found []sensor.Tamper) {
	sort.SliceStable(found, func(i, j int) bool { return found[i].Check < found[j].Check })
	arr := zerolog.Arr()
	for _, f := range found {
		d := zerolog.Dict().Str("check", string(f.Check)).Str("detail", f.Detail)
		if f.Hook != "" {
			d.Str("hook", f.Hook)
		}
		if f.ProgID != 0 {
			d.Uint32("prog_id", uint32(f.ProgID))
		}
		if f.LinkID != 0 {
			d.Uint32("link_id", uint32(f.LinkID))
		}
		arr.Dict(d)
	}
	r.begin(time.Now(), "tamper-detected", []string{"intrusion_detection"}, []string{"indicator"}, "alert",
		func(d *zerolog.Event) { d.Int("severity", 99).Str("outcome", "failure") }).
		Dict("process", zerolog.Dict().Int("pid", pid())).
		Dict("vigil", zerolog.Dict().Str("severity", "critical").Dict("tamper", zerolog.Dict().Array("findings", arr))).
		Send()
}
