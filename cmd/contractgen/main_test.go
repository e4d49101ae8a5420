package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

func TestGoName(t *testing.T) {
	for c, want := range map[string]string{
		"watch_id":  "WatchID",
		"dir_ino":   "DirIno",
		"path2_len": "Path2Len",
		"sessionid": "SessionID",
		"_pad1":     "_",
		"VFS_WRITE": "VFSWrite",
		"SELF_TGID": "SelfTGID",
		"ANCHOR":    "Anchor",
	} {
		if got := goName(c); got != want {
			t.Errorf("goName(%q) = %q, want %q", c, got, want)
		}
	}
}

// The objects share vigil.h: one that disagrees is refused, not merged.
func TestObjectsMustAgree(t *testing.T) {
	objs, err := loadObjects(filepath.Join("..", "..", "elf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) < 2 {
		t.Fatalf("%d objects: need two to compare", len(objs))
	}
	var sensor fileOut
	for _, f := range files {
		if f.pkg == "sensor" {
			sensor = f
		}
	}
	if _, err := generate(sensor, objs); err != nil {
		t.Fatalf("the embedded objects: %v", err)
	}
	var ev *btf.Struct
	if err := objs[1].spec.Types.TypeByName("vg_event", &ev); err != nil {
		t.Fatal(err)
	}
	ev.Members[len(ev.Members)-2].Name = "exe_length"
	_, err = generate(sensor, objs)
	if err == nil || !strings.Contains(err.Error(), "different declarations") {
		t.Fatalf("objects with different vg_event: err = %v", err)
	}
}

// A flag enumerator that is not one bit cannot be written as 1 << n.
func TestFlagNotOneBit(t *testing.T) {
	objs, err := loadObjects(filepath.Join("..", "..", "elf"))
	if err != nil {
		t.Fatal(err)
	}
	var en *btf.Enum
	if err := objs[0].spec.Types.TypeByName("vg_flag", &en); err != nil {
		t.Fatal(err)
	}
	en.Values[0].Value = 3
	var b strings.Builder
	err = enumDecl(&b, enumOut{c: "vg_flag", prefix: "VG_F_", goPrefix: "Flag", flags: true}, objs[0].spec)
	if err == nil || !strings.Contains(err.Error(), "not one bit") {
		t.Fatalf("a two-bit flag: err = %v", err)
	}
}
