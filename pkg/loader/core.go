package loader

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// ErrCORE marks an object refused because a CO-RE relocation that its code
// reaches cannot apply to the kernel's BTF.
var ErrCORE = errors.New("CO-RE")

// checkCORE relocates every program of spec against the kernel's BTF the way
// loading would (btf.CORERelocate, as cilium/ebpf's linker calls it), without
// loading anything. A relocation that cannot apply (a type or field the
// kernel does not have) makes cilium/ebpf replace its instruction with an
// invalid call, which the verifier rejects as `call unknown#195896080`
// (0xbad2310) without saying what was missing. Such an instruction is fine
// where the program cannot reach it: that is how bpf_core_field_exists
// guards a read of a field some kernels lack. So checkCORE refuses the
// object only for a poisoned instruction that reach finds reachable, and
// names the type and field.
func checkCORE(spec *ebpf.CollectionSpec, kernel *btf.Spec) error {
	names := make([]string, 0, len(spec.Programs))
	for n := range spec.Programs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := spec.Programs[name]
		insns := make(asm.Instructions, len(p.Instructions))
		copy(insns, p.Instructions)
		var relos []*btf.CORERelocation
		var at []int
		for i := range insns {
			if r := btf.CORERelocationMetadata(&insns[i]); r != nil {
				relos = append(relos, r)
				at = append(at, i)
			}
		}
		if len(relos) == 0 {
			continue
		}
		b, err := btf.NewBuilder(nil, nil)
		if err != nil {
			return err
		}
		fixups, err := btf.CORERelocate(relos, []*btf.Spec{kernel}, spec.ByteOrder, b.Add)
		if err != nil {
			return fmt.Errorf("%w: program %s: %v", ErrCORE, name, err)
		}
		poisoned := map[int]*btf.CORERelocation{}
		for i, fx := range fixups {
			ins := &insns[at[i]]
			if err := fx.Apply(ins); err != nil {
				return fmt.Errorf("%w: program %s: %s: %v", ErrCORE, name, describeRelo(relos[i], spec.Types, kernel), err)
			}
			if isPoison(ins) {
				poisoned[at[i]] = relos[i]
			}
		}
		if len(poisoned) == 0 {
			continue
		}
		live := reach(insns)
		idx := make([]int, 0, len(poisoned))
		for i := range poisoned {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			if live[i] {
				return fmt.Errorf("%w: %s (program %s)", ErrCORE, describeRelo(poisoned[i], spec.Types, kernel), name)
			}
		}
	}
	return nil
}

// isPoison reports whether a relocated instruction is cilium/ebpf's
// stand-in for a relocation that did not apply.
func isPoison(ins *asm.Instruction) bool {
	if ins.Constant != btf.COREBadRelocationSentinel {
		return false
	}
	return ins.IsBuiltinCall() || (ins.OpCode.IsDWordLoad() && ins.Dst == asm.R10)
}

// A relocation as cilium/ebpf prints it:
// CORERelocation(byte_off, Struct:"renamedata"[0:1], local_id=636).
// cilium/ebpf (v0.22) exports no accessors for the kind, the access path or
// the local type; TestDescribeRelo pins this format.
func parseRelo(s string) (kind string, access []int, localID btf.TypeID, err error) {
	bad := fmt.Errorf("unexpected CO-RE relocation format %q", s)
	body, ok := strings.CutPrefix(s, "CORERelocation(")
	if !ok {
		return "", nil, 0, bad
	}
	kind, rest, ok := strings.Cut(body, ", ")
	if !ok {
		return "", nil, 0, bad
	}
	i := strings.LastIndex(rest, "], local_id=")
	j := strings.LastIndex(rest[:max(i, 0)], "[")
	if i < 0 || j < 0 || !strings.HasSuffix(rest, ")") {
		return "", nil, 0, bad
	}
	for _, part := range strings.Split(rest[j+1:i], ":") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return "", nil, 0, bad
		}
		access = append(access, n)
	}
	id, err := strconv.ParseUint(strings.TrimSuffix(rest[i+len("], local_id="):], ")"), 10, 32)
	if err != nil {
		return "", nil, 0, bad
	}
	return kind, access, btf.TypeID(id), nil
}

// describeRelo says in C terms what a relocation needs that the kernel
// lacks: "struct renamedata has no field old_dir".
func describeRelo(r *btf.CORERelocation, local *btf.Spec, kernel *btf.Spec) string {
	kind, access, id, err := parseRelo(r.String())
	if err != nil || local == nil {
		return r.String()
	}
	typ, err := local.TypeByID(id)
	if err != nil {
		return r.String()
	}
	root := btf.UnderlyingType(typ)
	name := essentialName(root.TypeName())
	cname := cKind(root) + " " + name
	targets := kernelTypes(kernel, name, root)
	if len(targets) == 0 {
		return fmt.Sprintf("kernel has no %s", cname)
	}
	switch kind {
	case "local_type_id", "target_type_id", "type_exists", "type_matches", "type_size":
		return fmt.Sprintf("%s differs in this kernel (%s)", cname, kind)
	case "enumval_exists", "enumval_value":
		if e, ok := root.(*btf.Enum); ok && len(access) == 1 && access[0] < len(e.Values) {
			return fmt.Sprintf("%s has no value %s", cname, e.Values[access[0]].Name)
		}
		return fmt.Sprintf("%s differs in this kernel (%s)", cname, kind)
	}
	// A field: walk the local access path, then look the names up in the
	// kernel's type of the same name.
	var path []string
	t := root
	for _, a := range access[1:] {
		switch v := btf.UnderlyingType(t).(type) {
		case *btf.Struct:
			if a >= len(v.Members) {
				return r.String()
			}
			path = append(path, v.Members[a].Name)
			t = v.Members[a].Type
		case *btf.Union:
			if a >= len(v.Members) {
				return r.String()
			}
			path = append(path, v.Members[a].Name)
			t = v.Members[a].Type
		case *btf.Array:
			path = append(path, "["+strconv.Itoa(a)+"]")
			t = v.Type
		default:
			return r.String()
		}
	}
	// Anonymous members and array indexes are not names in C's spelling of
	// the path; findMember looks through anonymous members.
	var names []string
	for _, p := range path {
		if p != "" && !strings.HasPrefix(p, "[") {
			names = append(names, p)
		}
	}
	for _, target := range targets {
		cur := target
		for n, field := range names {
			m := findMember(cur, field)
			if m == nil {
				return fmt.Sprintf("%s has no field %s", cname, strings.Join(names[:n+1], "."))
			}
			cur = m.Type
		}
	}
	return fmt.Sprintf("%s field %s has another type in this kernel", cname, strings.Join(names, "."))
}

// findMember finds a member by name, looking into anonymous struct and
// union members the way C (and CO-RE) does.
func findMember(t btf.Type, name string) *btf.Member {
	var members []btf.Member
	switch v := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = v.Members
	case *btf.Union:
		members = v.Members
	default:
		return nil
	}
	for i := range members {
		if members[i].Name == name {
			return &members[i]
		}
	}
	for i := range members {
		if members[i].Name == "" {
			if m := findMember(members[i].Type, name); m != nil {
				return m
			}
		}
	}
	return nil
}

// kernelTypes are the kernel's types of a name, of the same kind as local.
func kernelTypes(kernel *btf.Spec, name string, local btf.Type) []btf.Type {
	all, err := kernel.AnyTypesByName(name)
	if err != nil {
		return nil
	}
	var out []btf.Type
	for _, t := range all {
		if cKind(t) == cKind(local) {
			out = append(out, t)
		}
	}
	return out
}

// essentialName drops a CO-RE flavour suffix: renamedata___dirs -> renamedata.
func essentialName(name string) string {
	if i := strings.Index(name, "___"); i > 0 {
		return name[:i]
	}
	return name
}

func cKind(t btf.Type) string {
	switch t.(type) {
	case *btf.Struct:
		return "struct"
	case *btf.Union:
		return "union"
	case *btf.Enum:
		return "enum"
	case *btf.Typedef:
		return "typedef"
	case *btf.Int:
		return "int"
	case *btf.Fwd:
		return "fwd"
	}
	return fmt.Sprintf("%T", t)
}

// regs is what reach knows of the registers at one instruction: the value
// of every register whose bit is set in known.
type regs struct {
	known uint16
	val   [11]uint64
}

func (r *regs) set(reg asm.Register, v uint64) {
	if reg <= asm.R10 {
		r.known |= 1 << reg
		r.val[reg] = v
	}
}

func (r *regs) forget(reg asm.Register) {
	if reg <= asm.R10 {
		r.known &^= 1 << reg
	}
}

func (r *regs) get(reg asm.Register) (uint64, bool) {
	if reg > asm.R10 || r.known&(1<<reg) == 0 {
		return 0, false
	}
	return r.val[reg], true
}

// join merges o into r (a register stays known only if both agree) and
// reports whether r changed.
func (r *regs) join(o *regs) bool {
	k := r.known & o.known
	for i := 0; i < 11; i++ {
		if k&(1<<i) != 0 && r.val[i] != o.val[i] {
			k &^= 1 << i
		}
	}
	changed := k != r.known
	r.known = k
	return changed
}

// reach marks the instructions a program can reach, following only the
// branch a condition on known constants takes. Constants come from
// immediate moves and loads and the arithmetic on them; that is how CO-RE
// existence checks compile (the relocated immediate, then a compare), and
// the verifier, which tracks constants at least as well, prunes the same
// branches. Anything else (memory, helper results) is unknown, so both
// branches of a test on it count as reachable: reach never calls dead what
// the verifier would run.
func reach(insns asm.Instructions) []bool {
	n := len(insns)
	raw := make([]asm.RawInstructionOffset, n)
	byRaw := map[asm.RawInstructionOffset]int{}
	symbols := map[string]int{}
	iter := insns.Iterate()
	for iter.Next() {
		raw[iter.Index] = iter.Offset
		byRaw[iter.Offset] = iter.Index
		if s := iter.Ins.Symbol(); s != "" {
			symbols[s] = iter.Index
		}
	}
	state := make([]*regs, n)
	var work []int
	flow := func(to int, r *regs) {
		if to < 0 || to >= n {
			return
		}
		if state[to] == nil {
			c := *r
			state[to] = &c
			work = append(work, to)
			return
		}
		if state[to].join(r) {
			work = append(work, to)
		}
	}
	flow(0, &regs{})
	jump := func(i int, off int64) int {
		t, ok := byRaw[raw[i]+asm.RawInstructionOffset(insns[i].Width())+asm.RawInstructionOffset(off)]
		if !ok {
			return -1
		}
		return t
	}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		ins := &insns[i]
		r := *state[i]
		switch class := ins.OpCode.Class(); class {
		case asm.ALUClass, asm.ALU64Class:
			alu(&r, ins, class == asm.ALU64Class)
			flow(i+1, &r)
		case asm.LdClass:
			if ins.IsConstantLoad(asm.DWord) {
				r.set(ins.Dst, uint64(ins.Constant))
			} else {
				r.forget(ins.Dst)
			}
			flow(i+1, &r)
		case asm.LdXClass:
			r.forget(ins.Dst)
			flow(i+1, &r)
		case asm.StClass, asm.StXClass:
			if ins.OpCode.Mode() == asm.AtomicMode {
				r.forget(ins.Src)
				r.forget(asm.R0)
			}
			flow(i+1, &r)
		case asm.JumpClass, asm.Jump32Class:
			op := ins.OpCode.JumpOp()
			switch op {
			case asm.Exit:
				continue
			case asm.Call:
				if ins.IsFunctionCall() {
					if at, ok := symbols[ins.Reference()]; ok {
						flow(at, &regs{})
					} else if t := jump(i, ins.Constant); t >= 0 {
						flow(t, &regs{})
					}
				}
				for reg := asm.R0; reg <= asm.R5; reg++ {
					r.forget(reg)
				}
				flow(i+1, &r)
				continue
			case asm.Ja:
				off := int64(ins.Offset)
				if class == asm.Jump32Class {
					off = ins.Constant
				}
				flow(jump(i, off), &r)
				continue
			}
			taken, known := decide(&r, ins, class == asm.Jump32Class)
			if !known || taken {
				flow(jump(i, int64(ins.Offset)), &r)
			}
			if !known || !taken {
				flow(i+1, &r)
			}
		default:
			flow(i+1, &r)
		}
	}
	live := make([]bool, n)
	for i, s := range state {
		live[i] = s != nil
	}
	return live
}

// alu applies an arithmetic instruction to what is known of the registers.
func alu(r *regs, ins *asm.Instruction, wide bool) {
	op := ins.OpCode.ALUOp()
	var src uint64
	srcKnown := true
	if ins.OpCode.Source() == asm.ImmSource {
		src = uint64(ins.Constant)
	} else {
		src, srcKnown = r.get(ins.Src)
	}
	if op == asm.Mov {
		if !srcKnown {
			r.forget(ins.Dst)
			return
		}
		if !wide {
			src = uint64(uint32(src))
		}
		r.set(ins.Dst, src)
		return
	}
	dst, dstKnown := r.get(ins.Dst)
	if !srcKnown || !dstKnown {
		r.forget(ins.Dst)
		return
	}
	var v uint64
	switch op {
	case asm.Add:
		v = dst + src
	case asm.Sub:
		v = dst - src
	case asm.Mul:
		v = dst * src
	case asm.Or:
		v = dst | src
	case asm.And:
		v = dst & src
	case asm.Xor:
		v = dst ^ src
	case asm.LSh:
		v = dst << (src & 63)
	case asm.RSh:
		v = dst >> (src & 63)
	default:
		r.forget(ins.Dst)
		return
	}
	if !wide {
		v = uint64(uint32(v))
	}
	r.set(ins.Dst, v)
}

// decide evaluates a conditional jump whose operands are known.
func decide(r *regs, ins *asm.Instruction, narrow bool) (taken, known bool) {
	dst, ok := r.get(ins.Dst)
	if !ok {
		return false, false
	}
	var src uint64
	if ins.OpCode.Source() == asm.ImmSource {
		src = uint64(ins.Constant)
	} else if src, ok = r.get(ins.Src); !ok {
		return false, false
	}
	if narrow {
		dst, src = uint64(uint32(dst)), uint64(uint32(src))
	}
	sd, ss := int64(dst), int64(src)
	if narrow {
		sd, ss = int64(int32(dst)), int64(int32(src))
	}
	switch ins.OpCode.JumpOp() {
	case asm.JEq:
		return dst == src, true
	case asm.JNE:
		return dst != src, true
	case asm.JGT:
		return dst > src, true
	case asm.JGE:
		return dst >= src, true
	case asm.JLT:
		return dst < src, true
	case asm.JLE:
		return dst <= src, true
	case asm.JSGT:
		return sd > ss, true
	case asm.JSGE:
		return sd >= ss, true
	case asm.JSLT:
		return sd < ss, true
	case asm.JSLE:
		return sd <= ss, true
	case asm.JSet:
		return dst&src != 0, true
	}
	return false, false
}
