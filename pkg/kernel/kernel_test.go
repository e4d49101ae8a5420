package kernel

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"
)

func TestParseRelease(t *testing.T) {
	tests := []struct {
		release string
		want    Version
		wantErr bool
	}{
		{release: "5.10.0-32-amd64", want: Version{5, 10, 0}},
		{release: "6.1.176", want: Version{6, 1, 176}},
		{release: "6.12.117+deb13-amd64", want: Version{6, 12, 117}},
		{release: "6.18.44-fc-v669", want: Version{6, 18, 44}},
		{release: "4.19", want: Version{4, 19, 0}},
		{release: "6.1", want: Version{6, 1, 0}},
		{release: "6.1.", want: Version{6, 1, 0}},
		{release: "5.4.0.1-foo", want: Version{5, 4, 0}},
		{release: "5", wantErr: true},
		{release: "", wantErr: true},
		{release: "abc", wantErr: true},
		{release: "6.x", wantErr: true},
		{release: ".6.1", wantErr: true},
		{release: "v6.1", wantErr: true},
		{release: "99999999999999999999.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.release, func(t *testing.T) {
			got, err := ParseRelease(tt.release)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseRelease(%q) = %v, want an error", tt.release, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRelease(%q): %v", tt.release, err)
			}
			if got != tt.want {
				t.Errorf("ParseRelease(%q) = %+v, want %+v", tt.release, got, tt.want)
			}
		})
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b Version
		want bool
	}{
		{Version{5, 10, 0}, Version{6, 1, 0}, true},
		{Version{6, 1, 0}, Version{5, 10, 0}, false},
		{Version{6, 1, 0}, Version{6, 12, 0}, true},
		{Version{6, 12, 0}, Version{6, 2, 0}, false},
		{Version{6, 1, 5}, Version{6, 1, 10}, true},
		{Version{6, 1, 10}, Version{6, 1, 5}, false},
		{Version{6, 1, 0}, Version{6, 1, 0}, false},
		{Version{4, 19, 300}, Version{5, 0, 0}, true},
	}
	for _, tt := range tests {
		if got := tt.a.Less(tt.b); got != tt.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestVersionStrings(t *testing.T) {
	tests := []struct {
		v          Version
		mm, string string
	}{
		{Version{6, 12, 117}, "6.12", "6.12.117"},
		{Version{5, 10, 0}, "5.10", "5.10.0"},
		{Version{4, 19, 0}, "4.19", "4.19.0"},
	}
	for _, tt := range tests {
		if got := tt.v.MajorMinor(); got != tt.mm {
			t.Errorf("%+v.MajorMinor() = %q, want %q", tt.v, got, tt.mm)
		}
		if got := tt.v.String(); got != tt.string {
			t.Errorf("%+v.String() = %q, want %q", tt.v, got, tt.string)
		}
	}
}

var (
	charT     = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	llT       = &btf.Int{Name: "long long int", Size: 8, Encoding: btf.Signed}
	uintT     = &btf.Int{Name: "unsigned int", Size: 4}
	fileT     = &btf.Struct{Name: "file"}
	inodeT    = &btf.Struct{Name: "inode"}
	dentryT   = &btf.Struct{Name: "dentry"}
	umodeT    = &btf.Typedef{Name: "umode_t", Type: &btf.Int{Name: "unsigned short", Size: 2}}
	loffT     = &btf.Typedef{Name: "loff_t", Type: llT}
	unionT    = &btf.Union{Name: "bpf_attr"}
	enumT     = &btf.Enum{Name: "pid_type", Size: 4}
	fwdStruct = &btf.Fwd{Name: "mnt_idmap", Kind: btf.FwdStruct}
	fwdUnion  = &btf.Fwd{Name: "u", Kind: btf.FwdUnion}
)

func TestTypeString(t *testing.T) {
	tests := []struct {
		name string
		typ  btf.Type
		want string
	}{
		{"struct pointer", &btf.Pointer{Target: fileT}, "struct file *"},
		{"const char pointer", &btf.Pointer{Target: &btf.Const{Type: charT}}, "char *"},
		{"pointer to const pointer", &btf.Pointer{Target: &btf.Const{Type: &btf.Pointer{Target: charT}}}, "char **"},
		{"pointer to pointer", &btf.Pointer{Target: &btf.Pointer{Target: inodeT}}, "struct inode **"},
		{"volatile restrict", &btf.Pointer{Target: &btf.Volatile{Type: &btf.Restrict{Type: dentryT}}}, "struct dentry *"},
		{"int", llT, "long long int"},
		{"unsigned int", uintT, "unsigned int"},
		{"const int", &btf.Const{Type: uintT}, "unsigned int"},
		{"typedef", umodeT, "umode_t"},
		{"typedef pointer", &btf.Pointer{Target: loffT}, "loff_t *"},
		{"struct", fileT, "struct file"},
		{"union", unionT, "union bpf_attr"},
		{"union pointer", &btf.Pointer{Target: unionT}, "union bpf_attr *"},
		{"enum", enumT, "enum pid_type"},
		{"fwd struct pointer", &btf.Pointer{Target: fwdStruct}, "struct mnt_idmap *"},
		{"fwd union", fwdUnion, "union u"},
		{"void pointer", &btf.Pointer{Target: &btf.Void{}}, "void *"},
		{"void", &btf.Void{}, "void"},
		{"function pointer", &btf.Pointer{Target: &btf.FuncProto{Return: &btf.Void{}}}, "func *"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TypeString(tt.typ); got != tt.want {
				t.Errorf("TypeString(%v) = %q, want %q", tt.typ, got, tt.want)
			}
		})
	}
}

// testSpec builds a BTF spec holding a few kernel-like functions.
func testSpec(t *testing.T) *btf.Spec {
	t.Helper()
	param := func(name string, typ btf.Type) btf.FuncParam { return btf.FuncParam{Name: name, Type: typ} }
	funcs := []btf.Type{
		&btf.Func{Name: "vfs_unlink", Linkage: btf.GlobalFunc, Type: &btf.FuncProto{
			Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
			Params: []btf.FuncParam{
				param("idmap", &btf.Pointer{Target: fwdStruct}),
				param("dir", &btf.Pointer{Target: inodeT}),
				param("dentry", &btf.Pointer{Target: dentryT}),
				param("delegated_inode", &btf.Pointer{Target: &btf.Pointer{Target: inodeT}}),
			},
		}},
		&btf.Func{Name: "vfs_write", Linkage: btf.GlobalFunc, Type: &btf.FuncProto{
			Return: &btf.Typedef{Name: "ssize_t", Type: &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}},
			Params: []btf.FuncParam{
				param("file", &btf.Pointer{Target: fileT}),
				param("buf", &btf.Pointer{Target: &btf.Const{Type: charT}}),
				param("count", &btf.Typedef{Name: "size_t", Type: &btf.Int{Name: "long unsigned int", Size: 8}}),
				param("pos", &btf.Pointer{Target: loffT}),
			},
		}},
		&btf.Func{Name: "sync", Linkage: btf.GlobalFunc, Type: &btf.FuncProto{Return: &btf.Void{}}},
		// A struct named like a function: TypeByName must not confuse them.
		&btf.Struct{Name: "not_a_func"},
	}
	b, err := btf.NewBuilder(funcs, nil)
	if err != nil {
		t.Fatalf("btf.NewBuilder: %v", err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatalf("building BTF spec: %v", err)
	}
	return spec
}

func TestSpecFuncs(t *testing.T) {
	var funcs Funcs = SpecFuncs{testSpec(t)}
	tests := []struct {
		name    string
		want    []string
		wantErr error // nil: no error
	}{
		{name: "vfs_unlink", want: []string{"struct mnt_idmap *", "struct inode *", "struct dentry *", "struct inode **"}},
		{name: "vfs_write", want: []string{"struct file *", "char *", "size_t", "loff_t *"}},
		{name: "sync", want: nil},
		{name: "vfs_rename", wantErr: ErrNoFunc},
		{name: "not_a_func", wantErr: ErrNoFunc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, err := funcs.Func(tt.name)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Func(%q) error = %v, want %v", tt.name, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Func(%q): %v", tt.name, err)
			}
			if fn.Name != tt.name {
				t.Errorf("Func(%q).Name = %q", tt.name, fn.Name)
			}
			if !reflect.DeepEqual(fn.Params, tt.want) {
				t.Errorf("Func(%q).Params = %q, want %q", tt.name, fn.Params, tt.want)
			}
		})
	}
}
