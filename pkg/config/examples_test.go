package config

import (
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// exampleChecks says, for each configuration in examples/, what its
// comments promise; every example must have one.
var exampleChecks = map[string]func(t *testing.T, c *Config){
	"expected-changes.toml": func(t *testing.T, c *Config) {
		if len(c.Warnings) != 0 {
			t.Errorf("warnings: %v", c.Warnings)
		}
		got := map[string]Expect{}
		for _, e := range c.Expect {
			got[e.Name] = e
		}
		if e := got["package upgrades"]; e.PackageManager != "any" || e.Path != "/usr/**" {
			t.Errorf("package upgrades: %+v", e)
		}
		if e := got["package configuration"]; e.PackageManager != "any" || e.Path != "/etc/**" {
			t.Errorf("package configuration: %+v", e)
		}
		e := got["saturday ansible run"]
		if e.UserID == nil || *e.UserID != 0 || e.Win == nil || e.Win.Start != 120 || e.Win.End != 240 ||
			e.Executable != "/usr/bin/python3*" {
			t.Errorf("saturday ansible run: %+v", e)
		}
		if e := got["app containers"]; e.Container != "docker" || e.Path != "/srv/app/data/**" {
			t.Errorf("app containers: %+v", e)
		}
		if len(c.Expect) != 4 {
			t.Errorf("%d rules, want 4", len(c.Expect))
		}
	},
	"cis-identity.toml": func(t *testing.T, c *Config) {
		w := byPath(c)
		for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
			"/etc/sudoers.d", "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d", "/root/.ssh/authorized_keys",
			"/home/*/.ssh/authorized_keys", "/etc/pam.d", "/etc/security", "/etc/ld.so.preload"} {
			if w[p] == nil {
				t.Errorf("does not watch %s", p)
			}
		}
		// The CIS owners and groups, resolved on this host.
		for p, og := range map[string][2]string{
			"/etc/passwd": {"root", "root"}, "/etc/group": {"root", "root"}, "/etc/sudoers": {"root", "root"},
			"/etc/shadow": {"root", "shadow"}, "/etc/gshadow": {"root", "shadow"},
		} {
			wantOwner(t, w[p], og[0], og[1])
		}
		for _, p := range []string{"/etc/sudoers.d", "/etc/ssh/sshd_config.d", "/etc/pam.d", "/etc/security"} {
			if !w[p].Recursive {
				t.Errorf("%s is not recursive", p)
			}
			wantOwner(t, w[p], "root", "")
		}
		for _, p := range []string{"/root/.ssh/authorized_keys", "/home/*/.ssh/authorized_keys"} {
			if w[p].OwnerID != nil || w[p].GroupID != nil {
				t.Errorf("%s: each user's keys must have no fixed owner", p)
			}
		}
		if w["/etc/sudoers.d"].Kind != "sudoers" || w["/etc/pam.d"].Kind != "diff" {
			t.Errorf("kinds: sudoers.d %q, pam.d %q", w["/etc/sudoers.d"].Kind, w["/etc/pam.d"].Kind)
		}
	},
	"relay-relp.toml": func(t *testing.T, c *Config) {
		r := c.Output.RELP
		if r.Address != "relp+tls://relay.example.net:2515" || r.CAFile == "" || r.CertFile == "" || r.KeyFile == "" {
			t.Errorf("relp output: %+v", r)
		}
		if c.Output.Spool.MaxBytes != 1<<30 || c.Output.Spool.MaxAge.String() != "72h0m0s" {
			t.Errorf("spool: %+v", c.Output.Spool)
		}
		if c.Output.Stdout || c.Output.File.Path == "" {
			t.Errorf("a local copy in a file, nothing on stdout: %+v", c.Output)
		}
		if byPath(c)["/etc/shadow"] == nil || byPath(c)["/home/*/.ssh/authorized_keys"] == nil {
			t.Errorf("identity files not watched")
		}
	},
	"web-docroot.toml": func(t *testing.T, c *Config) {
		w := byPath(c)["/var/www"]
		if w == nil || !w.Recursive || w.Kind != "hash" {
			t.Fatalf("/var/www: %+v", w)
		}
		wantOwner(t, w, "root", "")
		want := map[string]bool{"*.swp": true, "*~": true, "/var/www/*/cache": true}
		for _, x := range w.Exclude {
			delete(want, x)
		}
		if len(want) > 0 {
			t.Errorf("excludes missing: %v", want)
		}
		if c.Output.Stdout || c.Output.File.Path != "/var/log/vigil/docroot.json" || c.Coalesce.Window.String() != "500ms" {
			t.Errorf("output or window: %+v %s", c.Output, c.Coalesce.Window)
		}
	},
	"service-owner.toml": func(t *testing.T, c *Config) {
		w := byPath(c)["/srv/app"]
		if w == nil || !w.Recursive || w.Kind != "hash" {
			t.Fatalf("/srv/app: %+v", w)
		}
		wantOwner(t, w, "www-data", "www-data")
	},
}

// TestExamples: every configuration in examples/ parses and means what its
// comments say.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	var want []string
	for n := range exampleChecks {
		want = append(want, n)
	}
	sort.Strings(names)
	sort.Strings(want)
	if len(names) != len(want) {
		t.Errorf("examples %v, checked %v: every example needs a check", names, want)
	}
	for _, f := range files {
		f := f
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(f, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Watch) == 0 {
				t.Fatal("watches nothing")
			}
			check := exampleChecks[filepath.Base(f)]
			if check == nil {
				t.Fatal("no check for this example")
			}
			check(t, c)
		})
	}
}

func byPath(c *Config) map[string]*Watch {
	m := map[string]*Watch{}
	for i := range c.Watch {
		m[c.Watch[i].Path] = &c.Watch[i]
	}
	return m
}

// wantOwner checks a watch's owner and group against this host's databases
// ("" for no expectation).
func wantOwner(t *testing.T, w *Watch, owner, group string) {
	t.Helper()
	if w == nil {
		t.Errorf("no watch for owner %s", owner)
		return
	}
	if owner == "" {
		if w.OwnerID != nil {
			t.Errorf("%s: owner set", w.Path)
		}
	} else {
		u, err := user.Lookup(owner)
		if err != nil {
			t.Fatal(err)
		}
		if w.Owner != owner || w.OwnerID == nil || strconv.FormatUint(uint64(*w.OwnerID), 10) != u.Uid {
			t.Errorf("%s: owner %q (%v), want %s (uid %s)", w.Path, w.Owner, w.OwnerID, owner, u.Uid)
		}
	}
	if group == "" {
		if w.GroupID != nil {
			t.Errorf("%s: group set", w.Path)
		}
		return
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	if w.Group != group || w.GroupID == nil || strconv.FormatUint(uint64(*w.GroupID), 10) != g.Gid {
		t.Errorf("%s: group %q (%v), want %s (gid %s)", w.Path, w.Group, w.GroupID, group, g.Gid)
	}
}
