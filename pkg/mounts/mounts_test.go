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
