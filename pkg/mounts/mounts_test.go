package mounts

import (
	"strings"
	"testing"
)

const sample = `21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
22 21 0:20 / /proc rw,nosuid shared:2 - proc proc rw
30 21 0:30 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=100m
31 21 0:30 /fake /etc/passwd rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=100m
32 21 0:33 / /etc/sudoers.d rw,relatime - overlay overlay rw,lowerdir=/etc/sudoers.d,upperdir=/tmp/up,workdir=/tmp/work
33 21 8:1 /srv/data /mnt/my\040data rw - ext4 /dev/sda1 rw
40 30 0:40 / /tmp rw - tmpfs other rw
`

func TestParseAndCover(t *testing.T) {
	tb, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/etc/passwd": "/etc/passwd", "/etc/passwd-": "/", "/etc/sudoers.d/10-x": "/etc/sudoers.d",
		"/etc": "/", "/tmp/x": "/tmp", "/mnt/my data/f": "/mnt/my data", "/": "/",
	} {
		if m := tb.Cover(p); m == nil || m.Mountpoint != want {
			t.Errorf("Cover(%s) = %+v, want mountpoint %s", p, m, want)
		}
	}
	// Stacked on /tmp: the top one (mounted on 30) is seen.
	if m := tb.Cover("/tmp/x"); m.ID != 40 || m.Source != "other" {
		t.Errorf("stacked /tmp: %+v", m)
	}
	pw := tb.Cover("/etc/passwd")
	if !pw.Bind || pw.SourcePath != "/tmp/fake" || pw.Root != "/fake" || pw.FSType != "tmpfs" {
		t.Errorf("bind over passwd: %+v", pw)
	}
	if d := pw.Describe(); d != "a bind mount of /tmp/fake (tmpfs, source tmpfs) on /etc/passwd" {
		t.Errorf("describe %q", d)
	}
	ov := tb.Cover("/etc/sudoers.d")
	if ov.Bind || len(ov.Layers) != 3 || ov.Layers[0] != "lowerdir=/etc/sudoers.d" {
		t.Errorf("overlay: %+v", ov)
	}
	if d := tb.Cover("/mnt/my data"); !d.Bind || d.SourcePath != "/srv/data" {
		t.Errorf("bind of part of the root filesystem: %+v", d)
	}
	if r := tb.Cover("/"); r.Bind || r.SourcePath != "" {
		t.Errorf("the root filesystem is no bind: %+v", r)
	}
	// Same ignores the id and device, which change across reboots.
	a, b := *pw, *pw
	b.ID, b.Dev = 99, "0:99"
	if !a.Same(&b) {
		t.Error("same mount with another id is not Same")
	}
	b.Source = "x"
	if a.Same(&b) {
		t.Error("another source is Same")
	}
	if _, err := Parse(strings.NewReader("garbage line\n")); err == nil {
		t.Error("a malformed line was accepted")
	}
}

func TestReadSelf(t *testing.T) {
	tb, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if m := tb.Cover("/"); m == nil || m.Mountpoint != "/" {
		t.Errorf("no mount at /: %+v", m)
	}
}

// A service's namespace under systemd's ProtectSystem=strict and
// ProtectHome=read-only: "/" bound onto itself on top of the root
// filesystem, /home and /root bound onto themselves. They show what was
// there, so paths are covered as on the host; PrivateTmp's /tmp is another
// directory and does cover /tmp.
const sandboxed = `200 150 8:1 / / rw,relatime - ext4 /dev/sda1 rw
201 200 8:1 / / ro,relatime - ext4 /dev/sda1 rw
202 201 8:1 /home /home ro,relatime - ext4 /dev/sda1 rw
203 201 8:1 /root /root ro,relatime - ext4 /dev/sda1 rw
204 201 8:1 /tmp/systemd-private-abc-vigil.service-xyz/tmp /tmp rw - ext4 /dev/sda1 rw
`

func TestSelfBindsAreTransparent(t *testing.T) {
	tb, err := Parse(strings.NewReader(sandboxed))
	if err != nil {
		t.Fatal(err)
	}
	host, err := Parse(strings.NewReader("21 1 8:1 / / rw - ext4 /dev/sda1 rw\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/passwd", "/root/.ssh/authorized_keys", "/home/alice/.ssh/authorized_keys"} {
		if m := tb.Cover(p); !m.Same(host.Cover(p)) || m.ID != 200 {
			t.Errorf("Cover(%s) = %+v, want the root filesystem as on the host", p, m)
		}
	}
	if m := tb.Cover("/tmp/x"); m.ID != 204 || m.SourcePath != "/tmp/systemd-private-abc-vigil.service-xyz/tmp" {
		t.Errorf("private /tmp: %+v", m)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\04`: `/x\04`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
