package sensor

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/loader"
)

// TestLayout keeps the Go mirrors of the C records from drifting: every
// embedded object's BTF must agree with them field by field.
func TestLayout(t *testing.T) {
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Objects) == 0 {
		t.Fatal("no embedded objects")
	}
	mirrors := map[string]any{
		"vg_event":    rawEvent{},
		"vg_hdr":      rawHeader{},
		"vg_watch":    watchValue{},
		"vg_name_key": nameKey{},
		"vg_key":      Key{},
		"vg_counters": rawCounters{},
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
				if v.Value != hookMax || len(HookNames) != hookMax {
					t.Errorf("%s: VG_H_MAX = %d, Go hookMax %d, %d hook names", o.Name, v.Value, hookMax, len(HookNames))
				}
				continue
			}
			want := strings.ToLower(strings.TrimPrefix(v.Name, "VG_H_"))
			if got := Hook(v.Value).String(); got != want && !(want == "copy_range" && got == "copy_file_range") {
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
	}
}

func compareStruct(t *testing.T, obj string, st *btf.Struct, gt reflect.Type) {
	t.Helper()
	if int(st.Size) != int(gt.Size()) {
		t.Errorf("%s: struct %s is %d bytes in C, %s is %d in Go", obj, st.Name, st.Size, gt.Name(), gt.Size())
	}
	if len(st.Members) != gt.NumField() {
		t.Errorf("%s: struct %s has %d members in C, %s has %d fields in Go", obj, st.Name, len(st.Members), gt.Name(), gt.NumField())
		return
	}
	for i, m := range st.Members {
		f := gt.Field(i)
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
