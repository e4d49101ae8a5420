package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestHugeConfig: 100,000 [[watch]] entries parse; one bad entry among
// them is reported with its own line and key, and only it.
func TestHugeConfig(t *testing.T) {
	const n = 100000
	build := func(bad int) []byte {
		var b strings.Builder
		for i := 0; i < n; i++ {
			p := fmt.Sprintf("/srv/many/p%06d", i)
			if i == bad {
				p = "relative/p"
			}
			fmt.Fprintf(&b, "[[watch]]\npath = %q\n", p)
		}
		return []byte(b.String())
	}
	cfg, err := Parse("huge.toml", build(-1))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Watch) != n || cfg.Watch[n-1].Path != "/srv/many/p099999" {
		t.Fatalf("%d watches, last %q", len(cfg.Watch), cfg.Watch[len(cfg.Watch)-1].Path)
	}
	_, err = Parse("huge.toml", build(n-2))
	want := fmt.Sprintf("huge.toml:%d: watch.%d.path: \"relative/p\" must be absolute", 2*(n-2)+2, n-2)
	if err == nil || !strings.Contains(err.Error(), "1 problem(s)") || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one problem %q", err, want)
	}
}
