package pkgmgr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testStatus = `Package: tool
Status: install ok installed
Architecture: amd64
Version: 1.2-3
Conffiles:
 /etc/tool/tool.conf 0123456789abcdef0123456789abcdef
 /etc/tool/old.conf fedcba9876543210fedcba9876543210 obsolete
Description: a tool
 with a long
 description

Package: gone
Status: deinstall ok config-files
Version: 0.1
Conffiles:
 /etc/gone.conf 0123456789abcdef0123456789abcdef

Package: broken
Status: install ok installed
Version: 9
Conffiles:
 no-slash 0123
 /etc/ok.conf 11111111111111111111111111111111
garbage line
`

func TestParseStatus(t *testing.T) {
	out := map[string]dpkgStatus{}
	problems := parseStatus(strings.NewReader(testStatus), "status", out)
	if s := out["tool"]; s.version != "1.2-3" || s.conffiles["/etc/tool/tool.conf"] != "0123456789abcdef0123456789abcdef" ||
		s.conffiles["/etc/tool/old.conf"] != "fedcba9876543210fedcba9876543210" {
		t.Errorf("tool: %+v", s)
	}
	if _, ok := out["tool:amd64"]; !ok {
		t.Error("tool:amd64 missing")
	}
	if _, ok := out["gone"]; ok {
		t.Error("a package with only its config files left counted as installed")
	}
	if s := out["broken"]; s.version != "9" || s.conffiles["/etc/ok.conf"] == "" {
		t.Errorf("broken: the good lines were lost: %+v", s)
	}
	want := []Problem{{"status", 22, "conffile line: want \" /path md5\""}, {"status", 24, "not a field"}}
	if len(problems) != len(want) {
		t.Fatalf("problems %v, want %v", problems, want)
	}
	for i := range want {
		if problems[i] != want[i] {
			t.Errorf("problem %d: %v, want %v", i, problems[i], want[i])
		}
	}
}

func TestParseMD5Sums(t *testing.T) {
	in := "d41d8cd98f00b204e9800998ecf8427e  usr/bin/tool\n" +
		"not a line\n" +
		"D41D8CD98F00B204E9800998ECF8427E  usr/bin/upper\n" +
		"\n" +
		"0cc175b9c0f1b6a831c399e269772661  usr/share/doc/tool/a b\n"
	sum, problems := parseMD5Sums(strings.NewReader(in), "tool.md5sums", "/usr/share/doc/tool/a b")
	if sum != "0cc175b9c0f1b6a831c399e269772661" {
		t.Errorf("sum %q", sum)
	}
	if len(problems) != 2 || problems[0].Line != 2 || problems[1].Line != 3 {
		t.Errorf("problems %v", problems)
	}
	if sum, _ := parseMD5Sums(strings.NewReader(in), "x", "/usr/bin/none"); sum != "" {
		t.Errorf("unlisted path got %q", sum)
	}
}

func FuzzDpkgParsers(f *testing.F) {
	f.Add(testStatus)
	f.Add("d41d8cd98f00b204e9800998ecf8427e  usr/bin/tool\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseStatus(strings.NewReader(s), "status", map[string]dpkgStatus{})
		parseMD5Sums(strings.NewReader(s), "md5sums", "/usr/bin/tool")
		parseList(strings.NewReader(s), "list", "p", map[string]string{})
	})
}

// TestDpkgLookup: a database laid out as dpkg writes it, under a root.
func TestDpkgLookup(t *testing.T) {
	admin := t.TempDir()
	root := t.TempDir()
	info := filepath.Join(admin, "info")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(admin, "status"), testStatus)
	write(filepath.Join(info, "tool:amd64.list"), "/.\n/etc\n/etc/tool\n/etc/tool/tool.conf\n/usr/bin/tool\nrelative\n")
	write(filepath.Join(info, "tool:amd64.md5sums"), "d41d8cd98f00b204e9800998ecf8427e  usr/bin/tool\n")
	d := NewDpkg(admin, root)
	o, problems, err := d.Lookup(root + "/usr/bin/tool")
	if err != nil {
		t.Fatal(err)
	}
	if o != (Owner{Package: "tool", Version: "1.2-3", Digest: "d41d8cd98f00b204e9800998ecf8427e", Algo: "md5"}) || len(problems) != 0 {
		t.Errorf("tool: %+v %v", o, problems)
	}
	o, _, _ = d.Lookup(root + "/etc/tool/tool.conf")
	if !o.Conffile || o.Digest != "0123456789abcdef0123456789abcdef" || o.Package != "tool" {
		t.Errorf("conffile: %+v", o)
	}
	if o, _, _ := d.Lookup(root + "/etc/other"); o.Package != "" {
		t.Errorf("unowned: %+v", o)
	}
	if o, _, _ := d.Lookup("/usr/bin/tool"); o.Package != "" {
		t.Errorf("outside the root: %+v", o)
	}
	if p := d.Problems(); len(p) != 3 {
		t.Errorf("problems %v: want the .list's relative line and status's two", p)
	}
}
