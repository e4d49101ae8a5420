package consumer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzConsumer checks, for arbitrary bytes, that Parse never fails or
// panics, is deterministic, yields valid JSON and sane Problems, and that
// Diff against a fixed state, an absent state and itself works (itself: no
// changes).
func fuzzConsumer(f *testing.F, kind Kind, fixedFile string, extra func(t *testing.T, data []byte, out string)) {
	c, err := New(kind, Options{Key: testKey, DiffMaxBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	fixedContent := nginxConf
	if fixedFile != "" {
		fixedContent = readTestdata(f, fixedFile)
	}
	fixed, _, err := c.Parse(Input{Path: "/etc/fixed", Content: []byte(fixedContent)})
	if err != nil {
		f.Fatal(err)
	}
	absent, _, _ := c.Parse(Input{Path: "/etc/fixed"})
	f.Add([]byte(fixedContent))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := Input{Path: "/etc/sudoers.d/fuzz", Content: data, Info: &FileInfo{Size: int64(len(data))}}
		st, probs, err := c.Parse(in)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if !json.Valid(st) {
			t.Fatalf("invalid state JSON %q", st)
		}
		st2, probs2, _ := c.Parse(in)
		if !bytes.Equal(st, st2) || js(probs) != js(probs2) {
			t.Fatal("Parse is not deterministic")
		}
		nlines := bytes.Count(data, []byte("\n")) + 1
		for _, p := range probs {
			if p.Line < 0 || p.Line > nlines || !utf8.ValidString(p.Msg) {
				t.Fatalf("bad problem %+v (lines %d)", p, nlines)
			}
		}
		var out strings.Builder
		out.Write(st)
		out.WriteString(js(probs))
		for _, pair := range [][2]State{{fixed, st}, {st, fixed}, {absent, st}, {st, absent}} {
			ch, err := c.Diff(pair[0], pair[1])
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			for _, x := range ch {
				if x.Type == "" || !sortedUnique(x.Flags) || !sortedUnique(x.Fields) {
					t.Fatalf("bad change %s", js(x))
				}
				if kind == KindDiff && len(x.Text) > 4096 {
					t.Fatalf("diff text of %d bytes over the limit", len(x.Text))
				}
			}
			out.WriteString(js(ch))
		}
		if ch, err := c.Diff(st, st); err != nil || ch != nil {
			t.Fatalf("Diff(st, st) = %s, %v", js(ch), err)
		}
		_ = Includes(st)
		if extra != nil {
			extra(t, data, out.String())
		}
	})
}

func sortedUnique(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// noHashLeak fails if a password-hash-looking field that occurs once in
// the input shows up in the output.
func noHashLeak(field int) func(t *testing.T, data []byte, out string) {
	return func(t *testing.T, data []byte, out string) {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(strings.TrimSuffix(line, "\r"), ":")
			if len(f) <= field {
				continue
			}
			h := strings.TrimLeft(f[field], "!")
			if len(h) < 16 || h[0] != '$' || !utf8.ValidString(h) || strings.ContainsAny(h, "\"\\<>&\x7f") || hasControl(h) ||
				strings.Count(string(data), h) != 1 {
				continue
			}
			if strings.Contains(out, h) {
				t.Fatalf("hash field %q leaked", h)
			}
		}
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x2028 || r == 0x2029 {
			return true
		}
	}
	return false
}

func FuzzPasswd(f *testing.F)  { fuzzConsumer(f, KindPasswd, "passwd", noHashLeak(1)) }
func FuzzShadow(f *testing.F)  { fuzzConsumer(f, KindShadow, "shadow", noHashLeak(1)) }
func FuzzGroup(f *testing.F)   { fuzzConsumer(f, KindGroup, "group", noHashLeak(1)) }
func FuzzGshadow(f *testing.F) { fuzzConsumer(f, KindGshadow, "gshadow", noHashLeak(1)) }
func FuzzSudoers(f *testing.F) { fuzzConsumer(f, KindSudoers, "sudoers", nil) }
func FuzzAuthorizedKeys(f *testing.F) {
	fuzzConsumer(f, KindAuthorizedKeys, "authorized_keys", nil)
}
func FuzzSSHDConfig(f *testing.F) { fuzzConsumer(f, KindSSHDConfig, "sshd_config", nil) }

// FuzzDiff also checks that a line carrying "password=" never reaches the
// output as written.
func FuzzDiff(f *testing.F) {
	fuzzConsumer(f, KindDiff, "", func(t *testing.T, data []byte, out string) {
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, "password="); i >= 0 && len(line) > i+12 && utf8.ValidString(line) && !hasControl(line) &&
				!strings.ContainsAny(line, "\"\\<>&") && strings.Count(string(data), line) == 1 && strings.Contains(out, line) {
				t.Fatalf("secret line %q leaked", line)
			}
		}
	})
}
