package sensor

import (
	"reflect"
	"strings"
	"structs"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/loader"
)

// TestLayout checks the generated Go types (contract_gen.go, from
// cmd/contractgen) against every embedded object's BTF, field by field, and
// the generated enum names against the C enumerators: a hand edit of the
// generated file, or objects rebuilt without regenerating it, fail here as
// well as in make contract-check.
func TestLayout(t *testing.T) {
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Objects) == 0 {
		t.Fatal("no embedded objects")
	}
	mirrors := map[string]any{
		"vg_event":        rawEvent{},
		"vg_hdr":          rawHeader{},
		"vg_watch":        watchValue{},
		"vg_name_key":     nameKey{},
		"vg_key":          Key{},
		"vg_counters":     rawCounters{},
		"vg_cgroup_event": rawCgroup{},
	}
	for _, o := range man.Objects {
		spec, err := loader.Spec(o)
		if err != nil {
			t.Fatal(err)
		}
		for name, mirror := range mirrors {
			var st *btf.Struct
			if err := spec.Types.TypeByName(name, &st); err != nil {
				t.Errorf("%s: struct %s: %v", o.Name, name, err)
				continue
			}
			compareStruct(t, o.Name, st, reflect.TypeOf(mirror))
		}
		var hooks *btf.Enum
		if err := spec.Types.TypeByName("vg_hook", &hooks); err != nil {
			t.Fatalf("%s: enum vg_hook: %v", o.Name, err)
		}
		for _, v := range hooks.Values {
			if v.Name == "VG_H_MAX" {
				if v.Value != hookMax || hookMax > len(rawCounters{}.Hits) {
					t.Errorf("%s: VG_H_MAX = %d, Go hookMax %d, %d counter slots", o.Name, v.Value, hookMax, len(rawCounters{}.Hits))
				}
				continue
			}
			want := strings.ToLower(strings.TrimPrefix(v.Name, "VG_H_"))
			if got := Hook(v.Value).String(); got != want {
				t.Errorf("%s: hook %d is %s in C, %s in Go", o.Name, v.Value, v.Name, got)
			}
		}
		var ops *btf.Enum
		if err := spec.Types.TypeByName("vg_op", &ops); err != nil {
			t.Fatalf("%s: enum vg_op: %v", o.Name, err)
		}
		for _, v := range ops.Values {
			want := strings.ToLower(strings.TrimPrefix(v.Name, "VG_OP_"))
			if got := Op(v.Value).String(); got != want {
				t.Errorf("%s: op %d is %s in C, %s in Go", o.Name, v.Value, v.Name, got)
			}
		}
		var matches *btf.Enum
		if err := spec.Types.TypeByName("vg_match", &matches); err != nil {
			t.Fatalf("%s: enum vg_match: %v", o.Name, err)
		}
		for _, v := range matches.Values {
			want := strings.ToLower(strings.TrimPrefix(v.Name, "VG_M_"))
			if got := Match(v.Value).String(); got != want {
				t.Errorf("%s: match %d is %s in C, %s in Go", o.Name, v.Value, v.Name, got)
			}
		}
	}
}

// hostLayout is the marker field the generated structs start with.
var hostLayout = reflect.TypeOf(structs.HostLayout{})

func compareStruct(t *testing.T, obj string, st *btf.Struct, gt reflect.Type) {
	t.Helper()
	if int(st.Size) != int(gt.Size()) {
		t.Errorf("%s: struct %s is %d bytes in C, %s is %d in Go", obj, st.Name, st.Size, gt.Name(), gt.Size())
	}
	var fields []reflect.StructField
	for i := range gt.NumField() {
		if f := gt.Field(i); f.Type != hostLayout {
			fields = append(fields, f)
		}
	}
	if len(st.Members) != len(fields) {
		t.Errorf("%s: struct %s has %d members in C, %s has %d fields in Go", obj, st.Name, len(st.Members), gt.Name(), len(fields))
		return
	}
	for i, m := range st.Members {
		f := fields[i]
		if uint64(m.Offset.Bytes()) != uint64(f.Offset) {
			t.Errorf("%s: %s.%s at offset %d in C, %s.%s at %d in Go", obj, st.Name, m.Name, m.Offset.Bytes(), gt.Name(), f.Name, f.Offset)
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Errorf("%s: %s.%s: %v", obj, st.Name, m.Name, err)
			continue
		}
		if size != int(f.Type.Size()) {
			t.Errorf("%s: %s.%s is %d bytes in C, %s.%s is %d in Go", obj, st.Name, m.Name, size, gt.Name(), f.Name, f.Type.Size())
		}
	}
}
