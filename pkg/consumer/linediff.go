package consumer

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff/lcs"
)

// diffConsumer keeps a text file's (redacted) lines and reports unified
// line diffs between consecutive observations.
//
// Lines matching a redaction pattern, and every line of a PEM private key
// block (BEGIN ... PRIVATE KEY to the matching END, or to the end of the file
// if it is not closed), are stored and shown only as
// "[REDACTED sha256:<first 12 hex of HMAC-SHA256(key, line)>]": the secret
// never reaches the state or a Change, yet a change of it still shows.
//
// Files containing a NUL byte (binary) and files over 1 MiB are not diffed:
// their state keeps only a keyed fingerprint and the size, and a change is a
// content-changed with those (flag "binary" or "too-large").
//
// The unified diff is computed with go-udiff's LCS (lcs.DiffLines) and
// rendered here with 3 lines of context, in linear time (go-udiff's own
// renderer is quadratic in the number of hunks).
type diffConsumer struct {
	key    []byte
	max    int
	redact []*regexp.Regexp
}

// diffMaxContent is the largest file the diff consumer keeps lines of.
const diffMaxContent = 1 << 20

// diffContext is the number of context lines around each hunk.
const diffContext = 3

// truncMarker ends a truncated diff text.
const truncMarker = "... (truncated)\n"

type diffState struct {
	stateHeader
	Path     string   `json:"path,omitempty"`
	FP       string   `json:"fp"`
	Size     int64    `json:"size"`
	Binary   bool     `json:"binary,omitempty"`
	TooLarge bool     `json:"too_large,omitempty"`
	Lines    []string `json:"lines,omitempty"`
	NoEOL    bool     `json:"noeol,omitempty"`
}

// Kind implements Consumer.
func (diffConsumer) Kind() Kind { return KindDiff }

var (
	pemBeginRe = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----`)
	pemEndRe   = regexp.MustCompile(`-----END ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----`)
)

// redacted is the stored form of a secret line.
func (c diffConsumer) redacted(line string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(line))
	return "[REDACTED sha256:" + hex.EncodeToString(m.Sum(nil))[:12] + "]"
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (c diffConsumer) Parse(in Input) (State, []Problem, error) {
	st := &diffState{Path: in.Path}
	if in.Content == nil {
		return absentState(marshalState(KindDiff, true, st))
	}
	st.FP = fingerprint(c.key, string(in.Content))
	st.Size = int64(len(in.Content))
	var probs problems
	switch {
	case bytes.IndexByte(in.Content, 0) >= 0:
		st.Binary = true
	case len(in.Content) > diffMaxContent:
		st.TooLarge = true
		probs.add(0, "file larger than %d bytes: only its fingerprint is kept", diffMaxContent)
	default:
		st.NoEOL = len(in.Content) > 0 && in.Content[len(in.Content)-1] != '\n'
		inPEM := ""
		for _, l := range splitText(in.Content) {
			// CRs of CRLF files are dropped and invalid UTF-8 is replaced;
			// a change of those bytes only is caught by the fingerprint
			// (flag "line-endings-or-encoding").
			text := l.text
			secret := inPEM != ""
			if !secret {
				if m := pemBeginRe.FindStringSubmatch(text); m != nil {
					inPEM, secret = m[1], true
				}
			}
			if inPEM != "" {
				if m := pemEndRe.FindStringSubmatch(text); m != nil && m[1] == inPEM {
					inPEM = ""
				}
			}
			for _, re := range c.redact {
				if secret {
					break
				}
				secret = re.MatchString(text)
			}
			if secret {
				text = c.redacted(text)
			}
			st.Lines = append(st.Lines, text)
		}
		if inPEM != "" {
			probs.add(0, "private key block not closed: redacted to the end of the file")
		}
	}
	s, err := marshalState(KindDiff, false, st)
	return s, probs, err
}

// Diff implements Consumer (see the package documentation for absent files).
func (c diffConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[diffState](KindDiff, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	prevKnown := p.V != 0 // false when prev was absent
	if prevKnown && p.FP == s.FP {
		return nil, nil
	}
	if p.Binary || s.Binary || p.TooLarge || s.TooLarge {
		ch := Change{Type: ChangeContentChanged, Name: s.Path,
			New:   map[string]string{"fingerprint": s.FP, "size": strconv.FormatInt(s.Size, 10)},
			Flags: flagSet(boolFlag(p.Binary || s.Binary, "binary"), boolFlag(p.TooLarge || s.TooLarge, "too-large"))}
		if prevKnown {
			ch.Old = map[string]string{"fingerprint": p.FP, "size": strconv.FormatInt(p.Size, 10)}
		}
		return []Change{ch}, nil
	}
	a, b := diffSeq(p.Lines, p.NoEOL), diffSeq(s.Lines, s.NoEOL)
	label := labelOr(s.Path, "file")
	text, added, removed := unified(a, b, labelOr(p.Path, label), label)
	ch := Change{Type: ChangeLinesChanged, Name: s.Path,
		New: map[string]string{"added": strconv.Itoa(added), "removed": strconv.Itoa(removed)}}
	if text == "" {
		// Only bytes the line view drops changed (CRLF vs LF, invalid UTF-8).
		ch.Flags = []string{"line-endings-or-encoding"}
		return []Change{ch}, nil
	}
	if len(text) > c.max {
		text = truncate(text, c.max)
		ch.Flags = []string{"truncated"}
	}
	ch.Text = text
	return []Change{ch}, nil
}

func boolFlag(b bool, f string) string {
	if b {
		return f
	}
	return ""
}

func labelOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// diffSeq turns stored lines into newline-terminated strings, the last one
// without its newline when the file did not end with one.
func diffSeq(lines []string, noEOL bool) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l + "\n"
	}
	if noEOL && len(out) > 0 {
		out[len(out)-1] = lines[len(lines)-1]
	}
	return out
}

// unified renders a unified diff of a to b and counts added and removed lines.
func unified(a, b []string, fromLabel, toLabel string) (text string, added, removed int) {
	diffs := lcs.DiffLines(a, b)
	if len(diffs) == 0 {
		return "", 0, 0
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Start < diffs[j].Start })
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", fromLabel, toLabel)
	writeLine := func(prefix byte, s string) {
		sb.WriteByte(prefix)
		sb.WriteString(s)
		if !strings.HasSuffix(s, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
	rangeStr := func(start, count int) string {
		switch count {
		case 0:
			return fmt.Sprintf("%d,0", start)
		case 1:
			return strconv.Itoa(start + 1)
		}
		return fmt.Sprintf("%d,%d", start+1, count)
	}
	for i := 0; i < len(diffs); {
		// group diffs whose gaps are small enough to share context
		j := i
		for j+1 < len(diffs) && diffs[j+1].Start-diffs[j].End <= 2*diffContext {
			j++
		}
		first, last := diffs[i], diffs[j]
		aStart := max(0, first.Start-diffContext)
		aEnd := min(len(a), last.End+diffContext)
		bStart := first.ReplStart - (first.Start - aStart)
		del, ins := 0, 0
		for _, d := range diffs[i : j+1] {
			del += d.End - d.Start
			ins += d.ReplEnd - d.ReplStart
		}
		aCount := aEnd - aStart
		bCount := aCount - del + ins
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", rangeStr(aStart, aCount), rangeStr(bStart, bCount))
		pos := aStart
		for _, d := range diffs[i : j+1] {
			for ; pos < d.Start; pos++ {
				writeLine(' ', a[pos])
			}
			for k := d.Start; k < d.End; k++ {
				writeLine('-', a[k])
			}
			for k := d.ReplStart; k < d.ReplEnd; k++ {
				writeLine('+', b[k])
			}
			pos = d.End
		}
		for ; pos < aEnd; pos++ {
			writeLine(' ', a[pos])
		}
		added += ins
		removed += del
		i = j + 1
	}
	return sb.String(), added, removed
}

// truncate cuts a diff text to at most max bytes, ending with truncMarker:
// at a line boundary unless that would drop more than half the budget, else
// mid-line at a rune boundary.
func truncate(text string, max int) string {
	keep := max - len(truncMarker)
	if keep <= 0 {
		return truncMarker
	}
	if i := strings.LastIndexByte(text[:keep], '\n'); i >= keep/2 {
		return text[:i+1] + truncMarker
	}
	cut := text[:keep-1]
	for len(cut) > 0 && !utf8.RuneStart(text[len(cut)]) {
		cut = cut[:len(cut)-1]
	}
	return cut + "\n" + truncMarker
}
