package loader

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
)

// Options tune the load. Zero values mean the object's defaults.
type Options struct {
	// Object forces one object by name ("6.1", "tp"); "" or "auto" chooses.
	Object string
	// Hooks forces a hook type ("lsm", "fentry", "kprobe", "tracepoint"); "" or "auto" chooses.
	Hooks string
	// RingBufferBytes sizes the ring buffer: a power of two, a multiple of the page size.
	RingBufferBytes uint32
	// WatchEntries and NameEntries size the watch maps.
	WatchEntries uint32
	NameEntries  uint32
	// MaxDepth bounds the recursive ancestor walk (1..32).
	MaxDepth uint32
	// SelfPID, when set, is never reported: the agent sets its own pid so
	// that its own output files cannot feed back.
	SelfPID uint32
	// Log receives verifier logs (first and last lines at warn, all at debug).
	Log zerolog.Logger
}

// Loaded is an object loaded and attached.
type Loaded struct {
	Object  elf.Object
	Why     string
	Hooks   []string // attach points, e.g. "kprobe/vfs_write"
	Refused []Refusal
	// Skipped lists the object's hooks left out on this kernel (Prune).
	Skipped []Skip
	Coll    *ebpf.Collection
	links   []link.Link
	// Attached records, per attach point, the program and link the kernel
	// gave us at load: the tamper check compares them with what it has now.
	Attached []Attachment
}

// Attachment is one program attached at one hook, as loaded.
type Attachment struct {
	Hook    string         `json:"hook"`
	Program string         `json:"program"`
	ProgID  ebpf.ProgramID `json:"prog_id"`
	// LinkID is 0 where the kernel made no bpf_link (kprobes on kernels
	// before 5.15 attach through a perf event ioctl).
	LinkID   link.ID `json:"link_id,omitempty"`
	LinkType string  `json:"link_type,omitempty"`
	link     link.Link
	prog     *ebpf.Program
}

// Link is the attachment's link, owned by the Loaded.
func (a Attachment) Link() link.Link { return a.link }

// Prog is the attached program, owned by the Loaded.
func (a Attachment) Prog() *ebpf.Program { return a.prog }

// Close detaches every program and frees the object.
func (l *Loaded) Close() error {
	// The links are closed at once: a kprobe's detach waits for an RCU
	// grace period, and one after the other they made a stop (and a reload
	// that swaps objects) take a grace period per hook, seconds on a slow
	// machine, during which some hooks were already gone.
	var (
		result *multierror.Error
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	for _, lk := range l.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lk.Close(); err != nil {
				mu.Lock()
				result = multierror.Append(result, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l.links = nil
	if l.Coll != nil {
		l.Coll.Close()
		l.Coll = nil
	}
	return result.ErrorOrNil()
}

// ErrNoObject is returned when no embedded object fits the kernel.
var ErrNoObject = errors.New("no BPF object fits this kernel")

// Load picks, verifies, loads and attaches the best object for the kernel.
func Load(f *kernel.Facts, opt Options) (*Loaded, error) {
	man, err := elf.Load()
	if err != nil {
		return nil, err
	}
	cands, refused := Order(man.Objects, f, opt)
	// The first fentry or BPF-LSM object the kernel refuses permission
	// for refuses its family: the others would be refused the same way.
	noTrampolines := map[string]*Refusal{}
	for _, c := range cands {
		if r := noTrampolines[c.Object.Hooks]; r != nil {
			refused = append(refused, Refusal{Object: c.Object.Name, Reason: fmt.Sprintf(
				"not tried: the kernel refused %s with EPERM to %s", familyPrograms[c.Object.Hooks], r.Object)})
			continue
		}
		l, err := try(c, f, opt)
		if err != nil {
			r := Refusal{Object: c.Object.Name, Reason: reason(c, err)}
			if trampolineFamily(c.Object.Hooks) && errors.Is(err, unix.EPERM) {
				noTrampolines[c.Object.Hooks] = &r
			}
			refused = append(refused, r)
			opt.Log.Info().Str("object", c.Object.Name).Str("reason", r.Reason).Msg("object refused, falling back")
			continue
		}
		l.Why = c.Why
		l.Refused = refused
		return l, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kernel %s:", f.Release)
	for _, r := range refused {
		fmt.Fprintf(&b, " [%s: %s]", r.Object, r.Reason)
	}
	return nil, fmt.Errorf("%w: %s", ErrNoObject, b.String())
}

// Spec reads an embedded object's collection spec.
func Spec(o elf.Object) (*ebpf.CollectionSpec, error) {
	b, err := elf.Bytes(o.File)
	if err != nil {
		return nil, fmt.Errorf("reading object %s: %w", o.File, err)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing object %s: %w", o.File, err)
	}
	return spec, nil
}

// attachPoint is where a program attaches, read from its ELF section.
type attachPoint struct {
	kind   string // kprobe, kretprobe, fentry, fexit, lsm, tp_btf, tp (a perf-event tracepoint)
	target string // a function, for lsm an LSM hook, for tp: group/event
}

func (a attachPoint) String() string { return a.kind + "/" + a.target }

// function says whether the attach point is a kernel function.
func (a attachPoint) function() bool {
	switch a.kind {
	case "kprobe", "kretprobe", "fentry", "fexit", "lsm":
		return true
	}
	return false
}

// fn is the kernel function the attach point hooks: for a BPF-LSM
// program, the BPF LSM's stub of its hook (bpf_lsm_<hook>), whose
// prototype is the hook's.
func (a attachPoint) fn() string {
	if a.kind == "lsm" {
		return lsmStub + a.target
	}
	return a.target
}

// lsmStub starts the name of the BPF LSM's function for each LSM hook.
const lsmStub = "bpf_lsm_"

func pointOf(p *ebpf.ProgramSpec) (attachPoint, error) {
	kind, target, ok := strings.Cut(p.SectionName, "/")
	if !ok || target == "" {
		return attachPoint{}, fmt.Errorf("program %s: section %q names no attach point", p.Name, p.SectionName)
	}
	switch kind {
	case "kprobe", "kretprobe", "fentry", "fexit", "lsm", "tp_btf":
		return attachPoint{kind: kind, target: target}, nil
	case "tp":
		if g, ev, ok := strings.Cut(target, "/"); !ok || g == "" || ev == "" {
			return attachPoint{}, fmt.Errorf("program %s: section %q names no tracepoint group/event", p.Name, p.SectionName)
		}
		return attachPoint{kind: kind, target: target}, nil
	}
	return attachPoint{}, fmt.Errorf("program %s: unsupported section %q", p.Name, p.SectionName)
}

// HookedFuncs lists the kernel functions an object's kprobes or
// trampolines (fentry, fexit, and BPF-LSM's bpf_lsm_<hook>) attach to.
func HookedFuncs(spec *ebpf.CollectionSpec) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range spec.Programs {
		ap, err := pointOf(p)
		if err != nil {
			return nil, err
		}
		if ap.function() && !seen[ap.fn()] {
			seen[ap.fn()] = true
			out = append(out, ap.fn())
		}
	}
	sort.Strings(out)
	return out, nil
}

// familyPrograms names the programs of the trampoline families.
var familyPrograms = map[string]string{
	HooksFentry: "fentry/fexit programs (BPF trampolines)",
	HooksLSM:    "BPF-LSM and fentry/fexit programs (BPF trampolines)",
}

// reason is the refusal of a candidate that failed to load: for an fentry
// or BPF-LSM object, naming the family and, on EPERM, the kernel's refusal
// of its programs.
func reason(c Candidate, err error) string {
	progs, ok := familyPrograms[c.Object.Hooks]
	if !ok {
		return err.Error()
	}
	if errors.Is(err, unix.EPERM) {
		// cilium/ebpf's hint on EPERM is about MEMLOCK, which the sensor
		// has lifted: drop it.
		return "the kernel refused " + progs + " with EPERM: " +
			strings.Replace(err.Error(), " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", "", 1)
	}
	return progs + ": " + err.Error()
}

// LoadOnly does what Load does for one candidate up to the verifier and
// the kernel's acceptance of its programs, then frees it: nothing is
// attached. The error is the refusal Load would record (`vigil objects`).
func LoadOnly(c Candidate, f *kernel.Facts, opt Options) error {
	coll, _, _, err := load(c, f, opt)
	if err != nil {
		return errors.New(reason(c, err))
	}
	coll.Close()
	return nil
}

func load(c Candidate, f *kernel.Facts, opt Options) (*ebpf.Collection, *ebpf.CollectionSpec, []Skip, error) {
	spec, err := Spec(c.Object)
	if err != nil {
		return nil, nil, nil, err
	}
	skipped, err := Prune(spec, f.Funcs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("verifying against kernel BTF: %w", err)
	}
	if err := Check(c.Object, spec, f); err != nil {
		return nil, nil, nil, fmt.Errorf("verifying against kernel BTF: %w", err)
	}
	if err := configure(spec, opt); err != nil {
		return nil, nil, nil, err
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: f.Spec},
	})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			logVerifier(opt.Log, c.Object.Name, ve)
			return nil, nil, nil, fmt.Errorf("verifier rejected the object: %s", summarize(ve))
		}
		return nil, nil, nil, fmt.Errorf("loading: %w", err)
	}
	return coll, spec, skipped, nil
}

func try(c Candidate, f *kernel.Facts, opt Options) (*Loaded, error) {
	coll, spec, skipped, err := load(c, f, opt)
	if err != nil {
		return nil, err
	}
	l := &Loaded{Object: c.Object, Coll: coll, Skipped: skipped}
	for _, p := range spec.Programs {
		if ap, err := pointOf(p); err == nil && ap.kind == "tp" {
			mounted, err := ensureTracefs()
			if err != nil {
				l.Close()
				return nil, err
			}
			if mounted {
				opt.Log.Info().Str("tracefs", tracefsDirs[0]).Msg("mounted tracefs (not mounted; the tracepoint is attached by its id)")
			}
			break
		}
	}
	names := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ap, err := pointOf(spec.Programs[name])
		if err != nil {
			l.Close()
			return nil, err
		}
		lk, err := attach(ap, coll.Programs[name])
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("attaching %s: %w", ap, err)
		}
		l.links = append(l.links, lk)
		l.Hooks = append(l.Hooks, ap.String())
		l.Attached = append(l.Attached, attachment(ap, name, coll.Programs[name], lk))
	}
	return l, nil
}

// attachment reads the IDs the kernel gave a program and its link.
func attachment(ap attachPoint, name string, prog *ebpf.Program, lk link.Link) Attachment {
	a := Attachment{Hook: ap.String(), Program: name, link: lk, prog: prog}
	if info, err := prog.Info(); err == nil {
		a.ProgID, _ = info.ID()
	}
	if info, err := lk.Info(); err == nil {
		a.LinkID, a.LinkType = info.ID, linkTypeName(info.Type)
	}
	return a
}

// linkTypeName names the link types vigil attaches.
func linkTypeName(t link.Type) string {
	switch t {
	case link.TracingType:
		return "tracing"
	case link.PerfEventType:
		return "perf_event"
	case link.RawTracepointType:
		return "raw_tracepoint"
	case link.KprobeMultiType:
		return "kprobe_multi"
	}
	return fmt.Sprintf("type %d", t)
}

func attach(ap attachPoint, prog *ebpf.Program) (link.Link, error) {
	switch ap.kind {
	case "kprobe":
		return link.Kprobe(ap.target, prog, nil)
	case "kretprobe":
		return link.Kretprobe(ap.target, prog, nil)
	case "tp_btf", "fentry", "fexit":
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case "lsm":
		return link.AttachLSM(link.LSMOptions{Program: prog})
	case "tp":
		group, event, _ := strings.Cut(ap.target, "/")
		return link.Tracepoint(group, event, prog, nil)
	}
	return nil, fmt.Errorf("unsupported attach kind %q", ap.kind)
}

func configure(spec *ebpf.CollectionSpec, opt Options) error {
	set := func(name string, v uint32) error {
		if v == 0 {
			return nil
		}
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("object has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
		return nil
	}
	if opt.MaxDepth > DepthMax {
		return fmt.Errorf("max depth %d: at most %d", opt.MaxDepth, DepthMax)
	}
	if err := set(VarMaxDepth, opt.MaxDepth); err != nil {
		return err
	}
	if err := set(VarSelfTGID, opt.SelfPID); err != nil {
		return err
	}
	size := func(name string, v uint32) {
		if m, ok := spec.Maps[name]; ok && v != 0 {
			m.MaxEntries = v
		}
	}
	size(MapEvents, opt.RingBufferBytes)
	size(MapWatched, opt.WatchEntries)
	size(MapNames, opt.NameEntries)
	return nil
}

// summarize keeps the verifier log's first line and its last lines: the
// rejection, then the instruction count.
func summarize(ve *ebpf.VerifierError) string {
	lines := ve.Log
	if len(lines) == 0 {
		return ve.Error()
	}
	if len(lines) <= 3 {
		return strings.Join(lines, " | ")
	}
	tail := lines[len(lines)-2:]
	if strings.HasPrefix(tail[1], "processed ") && len(lines) > 3 {
		tail = lines[len(lines)-3:]
	}
	return lines[0] + " | ... | " + strings.Join(tail, " | ")
}

func logVerifier(log zerolog.Logger, object string, ve *ebpf.VerifierError) {
	log.Warn().Str("object", object).Str("verifier", summarize(ve)).Msg("verifier rejected object")
	log.Debug().Str("object", object).Str("verifier_log", strings.Join(ve.Log, "\n")).Msg("full verifier log")
}
