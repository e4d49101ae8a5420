// Command contractgen writes the Go side of the C/Go contract from the BTF of
// the built BPF objects: the record and map key/value structs, the enums and
// flags of bpf/vigil.h, and the objects' map and tunable names. `make elf`
// runs it after building elf/; `make contract-check` runs it into a temporary
// directory and fails on any difference from the checked-in files.
//
//	go run ./cmd/contractgen [-elf elf] [-out .]
//
// Every object of elf/manifest.json must give the same declarations: the
// objects share bpf/vigil.h, so a difference is a build error.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// A struct of vigil.h and the Go type it becomes.
type structOut struct {
	c, goName string
	doc       string // the Go type's doc comment, without "(struct c)."
}

// An enum of vigil.h and the Go constants it becomes.
type enumOut struct {
	c      string // C enum name
	doc    string // the doc comment of the type or constants
	prefix string // stripped from each enumerator
	// goType names the Go type of the constants; "" makes them untyped.
	goType   string
	goPrefix string // prepended to each constant's name
	// stringer, when set, gives the Go type a String method: each value's
	// enumerator in lower case without prefix, else stringer(%d).
	stringer string
	// count is the enumerator that counts the others (no String case);
	// countName is its Go name.
	count, countName string
	// flags writes each value as 1 << n.
	flags bool
}

// A generated Go file: its package, its path from -out, and what it holds.
type fileOut struct {
	pkg, path string
	structs   []structOut
	enums     []enumOut
	// names adds the objects' map and tunable names.
	names bool
}

var files = []fileOut{
	{
		pkg: "sensor", path: "pkg/sensor/contract_gen.go",
		structs: []structOut{
			{"vg_key", "Key", "Key names an inode: the kernel's device number (major<<20 | minor, " +
				"as in struct super_block.s_dev) and the inode number"},
			{"vg_name_key", "nameKey", "nameKey is a watched name: its directory's inode and the name's hash"},
			{"vg_watch", "watchValue", "watchValue is an entry of the watched and names maps"},
			{"vg_hdr", "rawHeader", "rawHeader starts every record"},
			{"vg_event", "rawEvent", "rawEvent is a file record's fixed part; its strings follow it"},
			{"vg_counters", "rawCounters", "rawCounters are one CPU's counters, indexed by Hook"},
			{"vg_cgroup_event", "rawCgroup", "rawCgroup is a cgroup record's fixed part; the cgroup's path follows it"},
			{"vg_lineage", "lineageValue", "lineageValue is an entry of the lineage map: a package manager's process tree"},
		},
		enums: []enumOut{
			{c: "vg_type", doc: "Record types: rawHeader.Type", prefix: "VG_T_", goPrefix: "type"},
			{c: "vg_op", doc: "Op is what happened to a file", prefix: "VG_OP_", goType: "Op", goPrefix: "Op",
				stringer: "op"},
			{c: "vg_match", doc: "Match is how a record's file matched the watch set", prefix: "VG_M_",
				goType: "Match", goPrefix: "Match", stringer: "match"},
			{c: "vg_hook", doc: "Hook is the kernel hook that emitted a record", prefix: "VG_H_", goType: "Hook",
				goPrefix: "Hook", stringer: "hook", count: "VG_H_MAX", countName: "hookMax"},
			{c: "vg_flag", doc: "Record flags: Event.Flags", prefix: "VG_F_", goPrefix: "Flag", flags: true},
			{c: "vg_watch_flag", doc: "Watch entry flags: Entry.Flags", prefix: "VG_W_", goPrefix: "Watch",
				flags: true},
			{c: "vg_pkg_flag", doc: "Package-manager lineage flags: rawEvent.PkgFlags, lineageValue.Flags",
				prefix: "VG_P_", goPrefix: "pkg", flags: true},
		},
	},
	{
		pkg: "loader", path: "pkg/loader/contract_gen.go",
		enums: []enumOut{
			{c: "vg_limit", doc: "Sizes and bounds the objects are built with", prefix: "VG_"},
		},
		names: true,
	},
}

// initialisms are written in upper case in Go identifiers.
var initialisms = map[string]string{
	"id": "ID", "uid": "UID", "gid": "GID", "pid": "PID", "tid": "TID", "ppid": "PPID",
	"euid": "EUID", "egid": "EGID", "auid": "AUID", "tgid": "TGID", "cpu": "CPU", "ts": "TS",
	"io": "IO", "vfs": "VFS", "sessionid": "SessionID", "mntns": "MntNS",
}

// goName turns a C identifier (snake case, either case) into a Go one.
// A name starting with "_" is padding and becomes the blank identifier.
func goName(c string) string {
	if strings.HasPrefix(c, "_") {
		return "_"
	}
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(c), "_") {
		if w == "" {
			continue
		}
		if s, ok := initialisms[w]; ok {
			b.WriteString(s)
			continue
		}
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// object is one built object and its collection spec.
type object struct {
	file string
	spec *ebpf.CollectionSpec
}

func main() {
	elfDir := flag.String("elf", "elf", "directory holding manifest.json and the objects")
	out := flag.String("out", ".", "directory the generated files' paths start from")
	flag.Parse()
	if err := run(*elfDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "contractgen:", err)
		os.Exit(1)
	}
}

func run(elfDir, out string) error {
	objs, err := loadObjects(elfDir)
	if err != nil {
		return err
	}
	for _, f := range files {
		src, err := generate(f, objs)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		p := filepath.Join(out, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, src, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func loadObjects(dir string) ([]object, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var man struct {
		Objects []struct {
			File string `json:"file"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("parsing %s/manifest.json: %w", dir, err)
	}
	if len(man.Objects) == 0 {
		return nil, fmt.Errorf("%s/manifest.json lists no objects", dir)
	}
	var objs []object
	for _, o := range man.Objects {
		spec, err := ebpf.LoadCollectionSpec(filepath.Join(dir, o.File))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", o.File, err)
		}
		objs = append(objs, object{file: o.File, spec: spec})
	}
	return objs, nil
}

// generate writes one Go file. The declarations come from each object in
// turn and must agree.
func generate(f fileOut, objs []object) ([]byte, error) {
	var decls string
	for i, o := range objs {
		d, err := declarations(f, o.spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.file, err)
		}
		if i > 0 && d != decls {
			return nil, fmt.Errorf("%s and %s give different declarations: the objects were built from different headers", objs[0].file, o.file)
		}
		decls = d
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by cmd/contractgen from the BTF of elf/*.o (bpf/vigil.h); DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package %s\n\n", f.pkg)
	var imports []string
	if strings.Contains(decls, "fmt.") {
		imports = append(imports, `"fmt"`)
	}
	if strings.Contains(decls, "structs.") {
		imports = append(imports, `"structs"`)
	}
	if len(imports) > 0 {
		fmt.Fprintf(&b, "import (\n%s\n)\n\n", strings.Join(imports, "\n"))
	}
	b.WriteString(decls)
	if f.names {
		b.WriteString(names(objs))
	}
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting: %w", err)
	}
	return src, nil
}

func declarations(f fileOut, spec *ebpf.CollectionSpec) (string, error) {
	// clang marks C's char signed in BTF; in Go a C string is bytes.
	for t, err := range spec.Types.All() {
		if err != nil {
			return "", err
		}
		if i, ok := t.(*btf.Int); ok && i.Name == "char" {
			i.Encoding = btf.Char
		}
	}
	var b strings.Builder
	gf := &btf.GoFormatter{Names: map[btf.Type]string{}, Identifier: goName}
	sts := make([]*btf.Struct, len(f.structs))
	for i, s := range f.structs {
		if err := spec.Types.TypeByName(s.c, &sts[i]); err != nil {
			return "", fmt.Errorf("struct %s: %w", s.c, err)
		}
		gf.Names[sts[i]] = s.goName
	}
	for i, s := range f.structs {
		decl, err := gf.TypeDeclaration(s.goName, sts[i])
		if err != nil {
			return "", fmt.Errorf("struct %s: %w", s.c, err)
		}
		fmt.Fprintf(&b, "%s%s\n\n", comment(fmt.Sprintf("%s (struct %s).", s.doc, s.c)), decl)
	}
	for _, e := range f.enums {
		if err := enumDecl(&b, e, spec); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func enumDecl(b *strings.Builder, e enumOut, spec *ebpf.CollectionSpec) error {
	var en *btf.Enum
	if err := spec.Types.TypeByName(e.c, &en); err != nil {
		return fmt.Errorf("enum %s: %w", e.c, err)
	}
	if en.Signed || en.Size != 4 {
		return fmt.Errorf("enum %s: %d bytes, signed %v: want an unsigned 32-bit enum", e.c, en.Size, en.Signed)
	}
	typ := ""
	if e.goType != "" {
		fmt.Fprintf(b, "%stype %s uint32\n\n", comment(fmt.Sprintf("%s (enum %s).", e.doc, e.c)), e.goType)
		typ = " " + e.goType
		fmt.Fprintf(b, "// The values of %s.\nconst (\n", e.goType)
	} else {
		fmt.Fprintf(b, "%sconst (\n", comment(fmt.Sprintf("%s (enum %s).", e.doc, e.c)))
	}
	type named struct {
		goName, str string
	}
	var cases []named
	for _, v := range en.Values {
		suffix, ok := strings.CutPrefix(v.Name, e.prefix)
		if !ok {
			return fmt.Errorf("enum %s: %s lacks the prefix %s", e.c, v.Name, e.prefix)
		}
		if v.Name == e.count {
			fmt.Fprintf(b, "\t%s = %d // %s\n", e.countName, v.Value, v.Name)
			continue
		}
		name := e.goPrefix + goName(suffix)
		val := fmt.Sprint(v.Value)
		if e.flags {
			if bits.OnesCount64(v.Value) != 1 {
				return fmt.Errorf("enum %s: flag %s = %#x is not one bit", e.c, v.Name, v.Value)
			}
			val = fmt.Sprintf("1 << %d", bits.TrailingZeros64(v.Value))
		}
		fmt.Fprintf(b, "\t%s%s = %s // %s\n", name, typ, val, v.Name)
		cases = append(cases, named{name, strings.ToLower(suffix)})
	}
	b.WriteString(")\n\n")
	if e.count != "" && !hasValue(en, e.count) {
		return fmt.Errorf("enum %s: no %s", e.c, e.count)
	}
	if e.stringer == "" {
		return nil
	}
	fmt.Fprintf(b, "func (v %s) String() string {\n\tswitch v {\n", e.goType)
	for _, c := range cases {
		fmt.Fprintf(b, "\tcase %s:\n\t\treturn %q\n", c.goName, c.str)
	}
	fmt.Fprintf(b, "\t}\n\treturn fmt.Sprintf(\"%s(%%d)\", uint32(v))\n}\n\n", e.stringer)
	return nil
}

// comment wraps text into a // comment of lines at most 80 columns wide.
func comment(text string) string {
	var b strings.Builder
	line := "//"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > 80 && line != "//" {
			b.WriteString(line + "\n")
			line = "//"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
	return b.String()
}

func hasValue(en *btf.Enum, name string) bool {
	for _, v := range en.Values {
		if v.Name == name {
			return true
		}
	}
	return false
}

// names lists every object's maps and tunables (the read-only globals the
// loader sets before load), saying which objects lack one.
func names(objs []object) string {
	maps := map[string][]string{}
	vars := map[string][]string{}
	for _, o := range objs {
		for n := range o.spec.Maps {
			if !strings.HasPrefix(n, ".") {
				maps[n] = append(maps[n], o.file)
			}
		}
		for n, v := range o.spec.Variables {
			if v.SectionName == ".rodata" {
				vars[n] = append(vars[n], o.file)
			}
		}
	}
	var b strings.Builder
	list := func(what, prefix, strip string, m map[string][]string) {
		fmt.Fprintf(&b, "// %s\nconst (\n", what)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			note := ""
			if len(m[k]) < len(objs) {
				sort.Strings(m[k])
				note = " // only in " + strings.Join(m[k], ", ")
			}
			fmt.Fprintf(&b, "\t%s%s = %q%s\n", prefix, goName(strings.TrimPrefix(k, strip)), k, note)
		}
		b.WriteString(")\n\n")
	}
	list("The objects' maps, by name.", "Map", "", maps)
	list("The objects' tunables: read-only globals set before load.", "Var", "vg_", vars)
	return b.String()
}
