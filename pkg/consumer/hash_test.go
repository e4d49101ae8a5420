package consumer

import (
	"testing"
)

func TestHashConsumer(t *testing.T) {
	c := newC(t, KindHash)
	info := FileInfo{Size: 5, Mode: 0o100755, UID: 0, GID: 0, MtimeNS: 1700000000_000000000}
	p := func(content string, fi FileInfo) State {
		st, probs, err := c.Parse(Input{Path: "/usr/bin/x", Content: []byte(content), Info: &fi})
		if err != nil || probs != nil {
			t.Fatal(err, probs)
		}
		return st
	}
	base := p("hello", info)
	diff := func(a, b State) []Change {
		ch, err := c.Diff(a, b)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	checkChanges(t, diff(base, p("hello", info)), nil)
	checkChanges(t, diff(nil, base), nil)
	checkChanges(t, diff(base, p("hellO", info)), []Change{{Type: "content-changed", Fields: []string{"sha256"},
		Old: m("sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "size", "5"),
		New: m("sha256", hashHex("hellO"), "size", "5")}})
	setuid := info
	setuid.Mode = 0o104755
	setuid.UID = 1000
	setuid.MtimeNS += 1500
	checkChanges(t, diff(base, p("hello", setuid)), []Change{{Type: "attributes-changed", Fields: []string{"mode", "mtime", "uid"},
		Old: m("mode", "0755", "mtime", "2023-11-14T22:13:20Z", "uid", "0"),
		New: m("mode", "4755", "mtime", "2023-11-14T22:13:20.0000015Z", "uid", "1000"), Flags: []string{"setuid"}}})
	dir := info
	dir.Mode = 0o040755
	checkChanges(t, diff(base, p("hello", dir)), []Change{{Type: "attributes-changed", Fields: []string{"type"},
		Old: m("type", "100000"), New: m("type", "040000")}})
	absent := parseAbsent(t, c, "/usr/bin/x")
	checkChanges(t, diff(base, absent), nil)
	checkChanges(t, diff(absent, base), []Change{{Type: "content-changed", New: m("sha256", hashHex("hello"), "size", "5")}})
}
