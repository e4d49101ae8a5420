package expect

import (
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/config"
)

func TestMatch(t *testing.T) {
	cfg, err := config.Parse("e.toml", []byte(`
[[watch]]
path = "/etc/passwd"

[[expect]]
name = "dpkg"
package_manager = "dpkg"
path = "/usr/**"

[[expect]]
name = "any-manager-in-window"
package_manager = "any"
window = "Sat 02:00-04:00"

[[expect]]
name = "ansible"
executable = "/usr/bin/python3*"
user = "0"
path = "/etc/app/*"

[[expect]]
name = "docker-writes"
container = "docker"
path = "/srv/**"

[[expect]]
name = "one-container"
container = "abc123"

[[expect]]
name = "in-any-container"
container = "any"
path = "/var/lib/**"
`))
	if err != nil {
		t.Fatal(err)
	}
	rules := New(cfg.Expect, time.UTC)
	sat := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	wed := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		ch   Change
		want string
	}{
		{"dpkg under /usr", Change{Path: "/usr/bin/ls", Package: "dpkg", At: wed}, "dpkg"},
		{"dpkg elsewhere, not in the window", Change{Path: "/etc/x", Package: "dpkg", At: wed}, ""},
		{"dpkg elsewhere, in the window", Change{Path: "/etc/x", Package: "dpkg", At: sat}, "any-manager-in-window"},
		{"rpm under /usr on a Wednesday", Change{Path: "/usr/bin/ls", Package: "rpm", At: wed}, ""},
		{"no manager in the window", Change{Path: "/usr/bin/ls", At: sat}, ""},
		{"ansible as root", Change{Path: "/etc/app/app.conf", Exe: "/usr/bin/python3.11", UID: 0, At: wed}, "ansible"},
		{"ansible as another user", Change{Path: "/etc/app/app.conf", Exe: "/usr/bin/python3.11", UID: 1000, At: wed}, ""},
		{"root with another tool", Change{Path: "/etc/app/app.conf", Exe: "/usr/bin/vi", At: wed}, ""},
		{"ansible outside its path", Change{Path: "/etc/app/sub/x", Exe: "/usr/bin/python3", At: wed}, ""},
		{"a docker container", Change{Path: "/srv/www/index.html", ContainerID: "f00", Runtime: "docker", At: wed}, "docker-writes"},
		{"a podman container", Change{Path: "/srv/www/index.html", ContainerID: "f00", Runtime: "podman", At: wed}, ""},
		{"a host process", Change{Path: "/srv/www/index.html", At: wed}, ""},
		{"one container by id", Change{Path: "/etc/shadow", ContainerID: "abc123", Runtime: "runc", At: wed}, "one-container"},
		{"any container", Change{Path: "/var/lib/x", ContainerID: "zzz", At: wed}, "in-any-container"},
		{"not in a container", Change{Path: "/var/lib/x", At: wed}, ""},
	} {
		got := rules.Match(c.ch)
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != c.want {
			t.Errorf("%s: matched %q, want %q", c.name, name, c.want)
		}
	}
	var none *Rules
	if none.Match(Change{Path: "/x"}) != nil {
		t.Error("no rules matched")
	}
}

// A rule with no matcher (a configuration warning) matches every change.
func TestMatchEverything(t *testing.T) {
	r := New([]config.Expect{{Name: "all"}}, time.UTC)
	if m := r.Match(Change{Path: "/etc/shadow"}); m == nil || m.Name != "all" {
		t.Errorf("matched %v", m)
	}
}
