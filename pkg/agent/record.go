package agent

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/container"
	"github.com/vigil-fim/vigil/pkg/expect"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/spool"
	"github.com/vigil-fim/vigil/pkg/state"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// recorder writes records: JSON lines with Elastic Common Schema names
// (docs/events.md), one per change.
type recorder struct {
	out    zerolog.Logger
	host   string
	hostID string
	boot   time.Time

	// seq hands out event.sequence (persisted in agent.state_dir); nil
	// counts from 1 in memory (tests).
	seq *state.Sequence

	mu      sync.Mutex
	lastSeq uint64
	seqErr  error
	names   map[uint32]string
	// containers resolves an actor's cgroup id to its path and container
	// (nil: records name none).
	containers *container.Cache
	// expect holds the [[expect]] rules (nil: none); set at start and
	// reload, read by the pipeline's goroutine only.
	expect *expect.Rules
	// written counts the records by action and kind (runtime.go).
	written map[recordKey]uint64
}

// newRecorder writes records to w with host.name host and host.id hostID,
// numbered by seq.
func newRecorder(w io.Writer, host, hostID string, seq *state.Sequence) *recorder {
	if host == "" {
		host, _ = os.Hostname()
	}
	return &recorder{
		out: zerolog.New(w), host: host, hostID: hostID, seq: seq,
		boot: bootTime(), names: map[uint32]string{},
	}
}

// begin starts a record with the fields every record has; more adds to
// the event object.
func (r *recorder) begin(at time.Time, action string, category, types []string, kind string,
	more ...func(*zerolog.Event)) *zerolog.Event {
	r.mu.Lock()
	var seq uint64
	if r.seq != nil {
		var err error
		if seq, err = r.seq.Next(); err != nil {
			r.seqErr = err
		}
	} else {
		seq = r.lastSeq + 1
	}
	r.lastSeq = seq
	r.count(action, kind)
	r.mu.Unlock()
	ev := r.out.Log().Str("@timestamp", at.UTC().Format(time.RFC3339Nano))
	ed := zerolog.Dict().
		Str("kind", kind).Strs("category", category).Strs("type", types).
		Str("action", action).Uint64("sequence", seq).Str("module", "vigil").Str("dataset", "vigil.file")
	for _, f := range more {
		f(ed)
	}
	ev.Dict("event", ed)
	host := zerolog.Dict().Str("name", r.host)
	if r.hostID != "" {
		host.Str("id", r.hostID)
	}
	ev.Dict("host", host)
	return ev
}

func (r *recorder) ready(info sensor.Info, watched, files, trees, anchors int, sources []string) {
	if info.Skipped == nil {
		info.Skipped = []loader.Skip{} // [] rather than null: none left out
	}
	ev := r.begin(time.Now(), "agent-ready", []string{"process"}, []string{"start"}, "state")
	ev.Dict("vigil", zerolog.Dict().
		Dict("sensor", zerolog.Dict().Str("kernel", info.Kernel).Str("object", info.Object).
			Str("hook_type", info.HookTyp).Str("why", info.Why).Strs("hooks", info.Hooks).
			Str("built_against", info.BTF).Strs("features", info.Features).Interface("refused", info.Refused).Interface("skipped", info.Skipped).
			Str("map_thread", info.MapThread)).
		Dict("watch", zerolog.Dict().Int("files", watched).Int("file_targets", files).
			Int("trees", trees).Int("anchors", anchors)).
		Strs("config", sources)).
		Dict("process", zerolog.Dict().Int("pid", os.Getpid())).
		Send()
}

func (r *recorder) stopped(live, recovered uint64) {
	r.begin(time.Now(), "agent-stopped", []string{"process"}, []string{"end"}, "state").
		Dict("process", zerolog.Dict().Int("pid", os.Getpid())).
		Dict("vigil", zerolog.Dict().Dict("records", zerolog.Dict().
			Uint64("live", live).Uint64("recovered", recovered))).Send()
}

// lost writes the events-lost record of a loss: file records lost (then
// re-read), or only skipped runs of the programs that emit none (gaps:
// nothing to re-read).
func (r *recorder) lost(l loss, recovered uint64) {
	scope := "the watch entries that lost records"
	recovery := "re-read; the changes found were written just before this record with vigil.origin=recovered"
	switch {
	case !l.files():
		scope, recovery = "nothing", "none needed: no file record was lost"
	case l.all:
		scope = "every watched file"
	}
	r.begin(time.Now(), "events-lost", []string{"file"}, []string{"info"}, "alert").
		Dict("vigil", zerolog.Dict().Uint64("lost", l.kernel+l.dropped).
			Uint64("lost_in_kernel", l.kernel).Uint64("lost_skipped_runs", l.skipped).Uint64("lost_in_queue", l.dropped).
			Uint64("lineage_skipped_runs", l.gaps["lineage"]).Uint64("cgroup_skipped_runs", l.gaps["cgroup"]).
			Int("entries", len(l.dirty)).Str("reread", scope).Uint64("recovered", recovered).
			Str("recovery", recovery)).
		Send()
}

var actionTypes = map[string][]string{
	"created": {"creation"}, "deleted": {"deletion"}, "modified": {"change"}, "replaced": {"change"},
	"renamed": {"change"}, "attributes-changed": {"change"}, "linked": {"change"},
	"shadowed": {"change"}, "uncovered": {"change"},
}

func (r *recorder) change(ch watch.Change, b *burst, sn *seen) {
	changes, problems, info := sn.changes, sn.problems, sn.info
	e := b.events[0]
	at := r.boot.Add(time.Duration(e.BootNS))
	var span func(*zerolog.Event)
	if ch.Action == watch.ActionModified {
		end := r.boot.Add(time.Duration(b.last.BootNS))
		span = func(d *zerolog.Event) {
			d.Str("start", at.UTC().Format(time.RFC3339Nano)).Str("end", end.UTC().Format(time.RFC3339Nano))
		}
	}
	uid, gid := ownerAfter(info, e)
	own := checkOwnership(ruleOf(ch.File), burstActors(b), uid, gid)
	own.aclGrants(ruleOf(ch.File), sn.attrs)
	kind, more := driftKind(own)
	cg := r.cgroupOf(e.Proc.CgroupID)
	expected := r.expectedRule(ch, e, cg, at)
	// A package manager that wrote content its package does not have.
	mismatch := sn.pkg != nil && sn.pkg.result == verifyMismatch
	if mismatch {
		kind = "alert"
	}
	switch {
	case expected != nil:
		// Expected: one step lower than it would be, never suppressed.
		more = []func(*zerolog.Event){expectedSeverity((own != nil && own.drift()) || mismatch)}
	case mismatch:
		more = []func(*zerolog.Event){func(d *zerolog.Event) { d.Int("severity", driftSeverity) }}
	}
	if span != nil {
		more = append(more, span)
	}
	ev := r.begin(at, string(ch.Action), []string{"file"}, actionTypes[string(ch.Action)], kind, more...)
	ev.Dict("file", r.fileDict(ch.File, ch.TargetPath, e, sn))
	r.actor(ev, e, cg)
	v := zerolog.Dict().Str("origin", "live").Str("kind", ch.File.Kind).
		Str("hook", e.Hook.String()).Str("match", e.Match.String()).
		Interface("changes", nonNil(changes))
	if ch.SourcePath != "" {
		v.Str("source_path", ch.SourcePath)
	}
	if len(problems) > 0 {
		v.Interface("problems", problems)
	}
	if ch.Action == watch.ActionModified {
		v.Int("writes", b.count)
		v.Array("actors", r.actors(b))
	}
	actorExtra(v, e.Proc, cg)
	if pe := markedActor(b); pe != nil {
		v.Dict("package", packageDict(pe, sn.pkg))
	}
	if e.Op == sensor.OpRename || e.Op == sensor.OpLink {
		v.Dict("inode", zerolog.Dict().Uint64("old", e.File.Ino).Uint64("new", e.File2.Ino))
	}
	if e.Op == sensor.OpSetattr || e.Op == sensor.OpTruncate {
		v.Dict("attributes", attrDict(e))
	}
	opFields(v, b, e, sn)
	attrFields(v, sn.attrs)
	if own != nil {
		v.Dict("ownership", own.dict())
	}
	if expected != nil {
		v.Dict("expected", zerolog.Dict().Str("rule", expected.Name).Str("source", expected.Source))
	}
	ev.Dict("vigil", v).Send()
}

func (r *recorder) recovered(f *watch.File, action string, sn *seen) {
	uid, gid := ownerAfter(sn.info, nil)
	own := checkOwnership(ruleOf(f), nil, uid, gid)
	own.aclGrants(ruleOf(f), sn.attrs)
	kind, more := driftKind(own)
	ev := r.begin(time.Now(), action, []string{"file"}, actionTypes[action], kind, more...)
	ev.Dict("file", r.fileDict(f, "", nil, sn))
	v := zerolog.Dict().Str("origin", "recovered").Str("kind", f.Kind).Interface("changes", nonNil(sn.changes))
	if len(sn.problems) > 0 {
		v.Interface("problems", sn.problems)
	}
	attrFields(v, sn.attrs)
	if own != nil {
		v.Dict("ownership", own.dict())
	}
	ev.Dict("vigil", v).Send()
}

func nonNil(c []consumer.Change) []consumer.Change {
	if c == nil {
		return []consumer.Change{}
	}
	return c
}

func (r *recorder) fileDict(f *watch.File, target string, e *sensor.Event, sn *seen) *zerolog.Event {
	info, sum := sn.info, sn.sum
	typ := "file"
	if info != nil {
		typ = fileType(info.Mode)
	} else if sn.goneMode != 0 {
		typ = fileType(sn.goneMode) // gone: as it was when last seen
	} else if e != nil && (e.Op == sensor.OpMkdir || e.Op == sensor.OpRmdir) {
		typ = "dir"
	} else if e != nil && e.Op == sensor.OpSymlink {
		typ = "symlink"
	} else if e != nil && e.Op == sensor.OpMknod {
		typ = fileType(e.Mode)
	}
	d := zerolog.Dict().Str("path", f.Path).Str("name", baseName(f.Path)).Str("type", typ)
	switch {
	case target != "":
		d.Str("target_path", target)
	case typ == "symlink" && sn.target != "":
		// A symlink's target, as it reads now (never followed).
		d.Str("target_path", sn.target)
	case typ == "symlink" && e != nil && e.Op == sensor.OpSymlink && e.Path2 != "":
		// Gone already: its target as the kernel saw it given.
		d.Str("target_path", e.Path2)
	case f.Link != "":
		d.Str("target_path", f.Path).Str("path", f.Link)
	}
	key := f.Key
	if e != nil && e.File2.Ino != 0 && (e.Op == sensor.OpRename || e.Op == sensor.OpLink) {
		key = e.File2
	} else if e != nil && key.Ino == 0 {
		key = e.File
	}
	if key.Ino != 0 {
		d.Str("inode", strconv.FormatUint(key.Ino, 10)).
			Str("device", fmt.Sprintf("%d:%d", key.Dev>>20, key.Dev&0xfffff))
	}
	if info != nil {
		d.Str("mode", fmt.Sprintf("%04o", info.Mode&0o7777)).
			Str("uid", strconv.FormatUint(uint64(info.UID), 10)).
			Str("gid", strconv.FormatUint(uint64(info.GID), 10)).
			Int64("size", info.Size).
			Str("mtime", time.Unix(0, info.MtimeNS).UTC().Format(time.RFC3339Nano)).
			Str("ctime", time.Unix(0, info.CtimeNS).UTC().Format(time.RFC3339Nano))
		if n := r.userName(info.UID); n != "" {
			d.Str("owner", n)
		}
	}
	if sum != "" {
		d.Dict("hash", zerolog.Dict().Str("sha256", sum))
	}
	return d
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// actorCgroup is an actor's cgroup path and the container it names.
type actorCgroup struct {
	path  string
	known bool
	info  container.Info
}

// cgroupOf resolves a cgroup id (sensor.Process.CgroupID).
func (r *recorder) cgroupOf(id uint64) actorCgroup {
	if r.containers == nil || id == 0 {
		return actorCgroup{}
	}
	p, info, ok := r.containers.Resolve(id)
	return actorCgroup{path: p, known: ok, info: info}
}

// actor writes who did it: ECS process.* and user.*, and container.* and
// orchestrator.* when the actor's cgroup names a container or a pod.
func (r *recorder) actor(ev *zerolog.Event, e *sensor.Event, cg actorCgroup) {
	p := e.Proc
	ev.Dict("process", zerolog.Dict().
		Uint32("pid", p.PID).Str("name", p.Comm).Str("executable", p.Exe).
		Dict("thread", zerolog.Dict().Uint32("id", p.TID)).
		Dict("parent", zerolog.Dict().Uint32("pid", p.PPID)))
	u := zerolog.Dict().Str("id", strconv.FormatUint(uint64(p.UID), 10))
	if n := r.userName(p.UID); n != "" {
		u.Str("name", n)
	}
	u.Dict("effective", zerolog.Dict().Str("id", strconv.FormatUint(uint64(p.EUID), 10)))
	if p.AUID != ^uint32(0) {
		u.Dict("audit", zerolog.Dict().Str("id", strconv.FormatUint(uint64(p.AUID), 10)))
	}
	u.Dict("group", zerolog.Dict().Str("id", strconv.FormatUint(uint64(p.GID), 10)))
	ev.Dict("user", u)
	if c := cg.info; c.ID != "" {
		d := zerolog.Dict().Str("id", c.ID)
		if c.Runtime != "" {
			d.Str("runtime", c.Runtime)
		}
		if c.Runtime == container.Nspawn {
			d.Str("name", c.ID)
		}
		ev.Dict("container", d)
	}
	if c := cg.info; c.PodUID != "" {
		ev.Dict("orchestrator", zerolog.Dict().Str("type", "kubernetes").
			Dict("resource", zerolog.Dict().Str("type", "pod").Str("id", c.PodUID)))
	}
}

// actorExtra is what ECS has no field for: vigil.process.
func actorExtra(v *zerolog.Event, p sensor.Process, cg actorCgroup) {
	d := zerolog.Dict().Uint64("cgroup_id", p.CgroupID).Uint32("mnt_ns", p.MntNS)
	if cg.known {
		d.Str("cgroup", cg.path)
	}
	if p.SessionID != ^uint32(0) {
		d.Uint32("session_id", p.SessionID)
	}
	v.Dict("process", d)
}

// actors lists the distinct processes of a burst with their write counts.
func (r *recorder) actors(b *burst) *zerolog.Array {
	arr := zerolog.Arr()
	for _, e := range b.actors {
		arr.Dict(zerolog.Dict().Uint32("pid", e.Proc.PID).Uint32("ppid", e.Proc.PPID).
			Str("name", e.Proc.Comm).Str("executable", e.Proc.Exe).
			Uint32("uid", e.Proc.UID).Uint32("euid", e.Proc.EUID).Uint32("auid", e.Proc.AUID).
			Int("writes", b.counts[actorKey{e.Proc.PID, e.Proc.Exe}]))
	}
	return arr
}

// ATTR_* bits of struct iattr.ia_valid.
const (
	attrMode  = 1 << 0
	attrUID   = 1 << 1
	attrGID   = 1 << 2
	attrSize  = 1 << 3
	attrAtime = 1 << 4
	attrMtime = 1 << 5
)

func attrDict(e *sensor.Event) *zerolog.Event {
	d := zerolog.Dict()
	var changed []string
	if e.Arg1&attrMode != 0 {
		changed = append(changed, "mode")
		d.Str("mode", fmt.Sprintf("%04o", e.Mode&0o7777))
	}
	if e.Arg1&attrUID != 0 {
		changed = append(changed, "uid")
		d.Uint32("uid", e.AttrUID)
	}
	if e.Arg1&attrGID != 0 {
		changed = append(changed, "gid")
		d.Uint32("gid", e.AttrGID)
	}
	if e.Arg1&attrSize != 0 {
		changed = append(changed, "size")
		d.Uint64("size", e.Arg2)
	}
	if e.Arg1&(attrAtime|attrMtime) != 0 {
		changed = append(changed, "times")
	}
	return d.Strs("changed", changed)
}

func (r *recorder) userName(uid uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.names[uid]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		n = u.Username
	}
	r.names[uid] = n
	return n
}

// forgetNames drops the uid cache after passwd changed.
func (r *recorder) forgetNames() {
	r.mu.Lock()
	r.names = map[uint32]string{}
	r.mu.Unlock()
}

// startup writes a change found by comparing with the baseline at start:
// made while vigil was not running, so no actor is claimed.
func (r *recorder) startup(f *scan.Finding, rule *config.Watch) {
	types := actionTypes[f.Action]
	if types == nil {
		types = []string{"change"}
	}
	var own *ownership
	if f.New != nil {
		uid, gid := f.New.UID, f.New.GID
		own = checkOwnership(rule, nil, &uid, &gid)
		own.aclGrants(rule, f.Attributes)
	}
	kind, more := driftKind(own)
	ev := r.begin(time.Now(), f.Action, []string{"file"}, types, kind, more...)
	d := zerolog.Dict().Str("path", f.Path).Str("name", baseName(f.Path)).Str("type", startupFileType(f))
	if n := f.New; n != nil && n.Type == scan.TypeSymlink {
		d.Str("target_path", n.Target)
	}
	if n := f.New; n != nil {
		d.Str("inode", strconv.FormatUint(n.Ino, 10)).Str("mode", fmt.Sprintf("%04o", n.Mode&0o7777)).
			Str("uid", strconv.FormatUint(uint64(n.UID), 10)).Str("gid", strconv.FormatUint(uint64(n.GID), 10)).
			Int64("size", n.Size).Str("mtime", time.Unix(0, n.MtimeNS).UTC().Format(time.RFC3339Nano))
	}
	ev.Dict("file", d)
	v := zerolog.Dict().Str("origin", "startup").Str("kind", f.Kind).Interface("changes", nonNil(f.Changes))
	if len(f.Fields) > 0 {
		v.Strs("fields", f.Fields)
	}
	if len(f.Problems) > 0 {
		v.Interface("problems", f.Problems)
	}
	attrFields(v, f.Attributes)
	entryFields(v, f)
	if own != nil {
		v.Dict("ownership", own.dict())
	}
	ev.Dict("vigil", v).Send()
}

// selfTest writes the startup self-test's result.
func (r *recorder) selfTest(want []sensor.Op, seen map[sensor.Op]bool, err error) {
	var got, missing []string
	for _, op := range want {
		if seen[op] {
			got = append(got, op.String())
		} else {
			missing = append(missing, op.String())
		}
	}
	outcome, kind := "success", "state"
	if err != nil || len(missing) > 0 {
		outcome, kind = "failure", "alert"
	}
	v := zerolog.Dict().Strs("seen", got).Strs("missing", missing)
	if err != nil {
		v.Str("error", err.Error())
	}
	r.begin(time.Now(), "self-test", []string{"process"}, []string{"info"}, kind,
		func(d *zerolog.Event) { d.Str("outcome", outcome) }).
		Dict("vigil", zerolog.Dict().Dict("self_test", v)).Send()
}

// spoolDropped writes that a network output's spool dropped records
// (full, or too old): they never reached that output. The record is the
// newest in the spool, so it is delivered even while the spool is full.
func (r *recorder) spoolDropped(st output.SpoolStats, newly uint64) {
	d := zerolog.Dict().Str("output", st.Output).Uint64("dropped", newly).Uint64("dropped_total", st.Dropped).
		Uint64("dropped_size", st.DroppedBy[spool.ReasonSize]).Uint64("dropped_age", st.DroppedBy[spool.ReasonAge]).
		Uint64("dropped_error", st.DroppedBy["error"]).
		Int("depth", st.Depth).Int64("bytes", st.Bytes)
	if st.FirstDropped != 0 {
		d.Uint64("first_sequence", st.FirstDropped).Uint64("last_sequence", st.LastDropped)
	}
	r.begin(time.Now(), "spool-dropped", []string{"process"}, []string{"info"}, "alert").
		Dict("vigil", zerolog.Dict().Dict("spool", d)).Send()
}

// identity returns host.id and the last event.sequence written.
func (r *recorder) identity() (string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hostID, r.lastSeq
}

// fileType is file.type for a mode's type bits, named as the baseline
// comparison names them (scan.FileType): file, dir, symlink (ECS's), fifo,
// socket, char-device, block-device.
func fileType(mode uint32) string {
	if t := scan.FileType(mode); t != "" {
		return t
	}
	return scan.TypeFile
}
