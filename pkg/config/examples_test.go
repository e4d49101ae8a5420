package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamples: every configuration in examples/ parses.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d examples", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(f, b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(c.Watch) == 0 {
			t.Errorf("%s watches nothing", f)
		}
	}
}
