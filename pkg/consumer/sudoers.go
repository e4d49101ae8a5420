package consumer

import (
	"path"
	"regexp"
	"strings"
)

// sudoersConsumer parses sudoers(5) files into logical lines.
//
// Physical lines ending in a backslash are joined with the next; comments
// ('#' up to the end of line, outside double quotes) are stripped, except
// that "#include"/"#includedir" at the start of a line are directives and
// '#' followed by a digit is a uid ("#0"). Every other non-empty logical line
// (user specifications, Defaults, *_Alias definitions) is a rule identified
// by its whitespace-normalized text; rules are a multiset, so a duplicated
// line that gains a copy is reported once more. Flags are heuristic:
// "nopasswd" (a NOPASSWD tag, or Defaults !authenticate), "all" (ALL in a
// command list), "negation" (a '!' item in a user spec or alias), "defaults"
// and "alias" for those kinds of line.
type sudoersConsumer struct{}

type sudoRule struct {
	Name  string   `json:"name"`
	Text  string   `json:"text"`
	Flags []string `json:"flags,omitempty"`
	Line  int      `json:"line"`
}

type sudoersState struct {
	stateHeader
	Rules    []sudoRule     `json:"rules"`
	Includes []includeEntry `json:"includes"`
}

// Kind implements Consumer.
func (sudoersConsumer) Kind() Kind { return KindSudoers }

// stripSudoComment removes a comment from a physical line. It reports an
// unterminated double quote.
func stripSudoComment(s string) (string, bool) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case '#':
			if inQuote {
				continue
			}
			if i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
				continue // #uid
			}
			return s[:i], false
		}
	}
	return s, inQuote
}

// sudoDirective recognizes include directives; the line is already trimmed.
func sudoDirective(s string) (directive, arg string, ok bool) {
	for _, d := range []string{"#includedir", "@includedir", "#include", "@include"} {
		if strings.HasPrefix(s, d) && (len(s) == len(d) || s[len(d)] == ' ' || s[len(d)] == '\t') {
			return d, strings.TrimSpace(s[len(d):]), true
		}
	}
	return "", "", false
}

// unquoteSudoPath removes double quotes and backslash escapes from a path.
func unquoteSudoPath(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (sudoersConsumer) Parse(in Input) (State, []Problem, error) {
	st := &sudoersState{Rules: []sudoRule{}, Includes: []includeEntry{}}
	if in.Content == nil {
		return absentState(marshalState(KindSudoers, true, st))
	}
	var probs problems
	dir := path.Dir(in.Path)
	var acc strings.Builder
	start := 0
	flush := func() {
		text := strings.Join(strings.Fields(acc.String()), " ")
		acc.Reset()
		if text == "" {
			return
		}
		st.Rules = append(st.Rules, classifySudoRule(text, start, &probs))
	}
	for _, l := range splitText(in.Content) {
		probs.checkUTF8(l)
		trimmed := strings.TrimSpace(l.text)
		if acc.Len() == 0 {
			start = l.num
			if d, arg, ok := sudoDirective(trimmed); ok {
				if arg == "" {
					probs.add(l.num, "%s without a path", d)
					continue
				}
				p := unquoteSudoPath(arg)
				res := p
				if !path.IsAbs(p) && in.Path != "" {
					res = path.Join(dir, p)
				}
				st.Includes = append(st.Includes, includeEntry{Directive: d, Path: p, Resolved: res, Line: l.num})
				continue
			}
		}
		text, open := stripSudoComment(l.text)
		if open {
			probs.add(l.num, "unterminated double quote")
		}
		t := strings.TrimRight(text, " \t")
		if trailingBackslashes(t)%2 == 1 {
			acc.WriteString(t[:len(t)-1])
			acc.WriteByte(' ')
			continue
		}
		acc.WriteString(text)
		flush()
	}
	if acc.Len() > 0 {
		probs.add(start, "line continuation at end of file")
		flush()
	}
	s, err := marshalState(KindSudoers, false, st)
	return s, probs, err
}

var (
	sudoAliasRe   = regexp.MustCompile(`^(User_Alias|Runas_Alias|Host_Alias|Cmnd_Alias|Cmd_Alias)\s+([^\s=]+)`)
	sudoDefaultRe = regexp.MustCompile(`^Defaults([:@>!]\S*)?(\s|$)`)
	sudoNopassRe  = regexp.MustCompile(`\bNOPASSWD\s*:`)
	sudoNoAuthRe  = regexp.MustCompile(`(^|[\s,])!\s*authenticate\b`)
	sudoCommaRe   = regexp.MustCompile(`\s*,\s*`)
	sudoParenRe   = regexp.MustCompile(`\([^)]*\)`)
	sudoTagRe     = regexp.MustCompile(`^([A-Z_]+\s*:\s*)+`)
	sudoOptRe     = regexp.MustCompile(`^((ROLE|TYPE|CWD|CHROOT|TIMEOUT|NOTBEFORE|NOTAFTER|APPARMOR_PROFILE|PRIVS|LIMITPRIVS)\s*=\s*\S+\s*)+`)
)

// classifySudoRule names and flags one logical line.
func classifySudoRule(text string, line int, probs *problems) sudoRule {
	r := sudoRule{Text: text, Line: line}
	var flags []string
	switch {
	case sudoDefaultRe.MatchString(text):
		r.Name = strings.Fields(text)[0]
		flags = append(flags, "defaults")
		if sudoNoAuthRe.MatchString(text) {
			flags = append(flags, "nopasswd")
		}
	case sudoAliasRe.MatchString(text):
		m := sudoAliasRe.FindStringSubmatch(text)
		r.Name = m[1] + " " + m[2]
		flags = append(flags, "alias")
		_, rest, ok := strings.Cut(text, "=")
		if !ok {
			probs.add(line, "alias definition without '='")
		}
		if strings.Contains(rest, "!") {
			flags = append(flags, "negation")
		}
		if m[1] == "Cmnd_Alias" || m[1] == "Cmd_Alias" {
			flags = append(flags, commandFlags(rest)...)
		}
	default:
		pre, rest, ok := strings.Cut(text, "=")
		users := strings.Fields(sudoCommaRe.ReplaceAllString(pre, ","))
		if len(users) > 0 {
			r.Name = users[0]
		}
		if !ok || len(users) < 2 {
			probs.add(line, "not a recognized sudoers entry (expected: users hosts = commands)")
		}
		if strings.Contains(pre, "!") || strings.Contains(sudoParenRe.ReplaceAllString(rest, ""), "!") {
			flags = append(flags, "negation")
		}
		if sudoNopassRe.MatchString(rest) {
			flags = append(flags, "nopasswd")
		}
		flags = append(flags, commandFlags(rest)...)
	}
	r.Flags = flagSet(flags...)
	return r
}

// commandFlags returns "all" when a command list (the text after the first
// '=' of a user spec, possibly with further "host = cmnds" after ':')
// contains ALL.
func commandFlags(rest string) []string {
	rest = sudoParenRe.ReplaceAllString(rest, " ")
	// Tags such as "NOPASSWD:" split segments too; that is harmless.
	for i, seg := range strings.Split(rest, ":") {
		if i > 0 && strings.Contains(seg, "=") {
			_, seg, _ = strings.Cut(seg, "=")
		}
		for _, item := range strings.Split(seg, ",") {
			item = strings.TrimSpace(item)
			item = sudoTagRe.ReplaceAllString(item, "")
			item = sudoOptRe.ReplaceAllString(item, "")
			f := strings.Fields(item)
			if len(f) == 0 {
				continue
			}
			// the last field is the command after any tag word left over
			// from a ':' split ("NOPASSWD" then " ALL").
			if f[len(f)-1] == "ALL" && (len(f) == 1 || isTagWord(f[0])) {
				return []string{"all"}
			}
		}
	}
	return nil
}

func isTagWord(s string) bool {
	switch s {
	case "NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT", "NOLOG_INPUT",
		"LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW", "INTERCEPT", "NOINTERCEPT":
		return true
	}
	return false
}

// Diff implements Consumer (see the package documentation for absent files).
func (sudoersConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[sudoersState](KindSudoers, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	count := func(rs []sudoRule) map[string]int {
		m := make(map[string]int, len(rs))
		for _, r := range rs {
			m[r.Text]++
		}
		return m
	}
	pc, cc := count(p.Rules), count(s.Rules)
	var out []Change
	for _, r := range p.Rules {
		if cc[r.Text] > 0 {
			cc[r.Text]--
			continue
		}
		out = append(out, Change{Type: ChangeSudoRuleRemoved, Name: r.Name, Flags: r.Flags, Line: r.Line, Text: r.Text})
	}
	for _, r := range s.Rules {
		if pc[r.Text] > 0 {
			pc[r.Text]--
			continue
		}
		out = append(out, Change{Type: ChangeSudoRuleAdded, Name: r.Name, Flags: r.Flags, Line: r.Line, Text: r.Text})
	}
	return append(out, diffIncludes(p.Includes, s.Includes)...), nil
}

// trailingBackslashes counts the backslashes ending s.
func trailingBackslashes(s string) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}
