// Package consumer turns "this watched file changed" into semantic changes a
// security team can read, such as "user bob added with uid 0".
//
// Each Consumer parses a file into a State (a JSON document the agent's state
// store persists across restarts) and diffs two States into Changes. Consumers
// never panic, whatever the bytes: malformed lines become Problems. No State,
// Change, Problem or error ever carries a secret: password hashes are kept
// only as keyed fingerprints (HMAC-SHA256 with a per-host key) and lines that
// look like secrets are redacted.
//
// # Absent files
//
// Parse of an Input whose Content is nil yields a State marked absent. Diff
// follows one rule for every kind:
//
//   - prev == nil (no previous observation): no changes (a baseline).
//   - cur absent: no changes. Reporting the removal of the file is the
//     caller's business; the consumer has nothing semantic to add.
//   - prev absent, cur present: the changes as if prev were an empty file
//     (every user "added", every rule "added", every line "added"...).
//
// # Line handling shared by the text consumers
//
// Lines are split on '\n'; a trailing '\r' (CRLF files) is dropped. Line
// numbers are 1-based. Blank lines are skipped silently, as glibc and the
// other parsers do. Invalid UTF-8 is reported as a Problem and the line is
// still parsed, each run of bad bytes replaced by U+FFFD.
// Problem messages never quote the file's content.
package consumer

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Kind names a consumer.
type Kind string

// The consumer kinds.
const (
	KindPasswd         Kind = "passwd"
	KindShadow         Kind = "shadow"
	KindGroup          Kind = "group"
	KindGshadow        Kind = "gshadow"
	KindSudoers        Kind = "sudoers"
	KindAuthorizedKeys Kind = "authorized_keys"
	KindSSHDConfig     Kind = "sshd_config"
	KindDiff           Kind = "diff"
	KindHash           Kind = "hash"
)

// Kinds lists every kind New accepts, in a fixed order.
var Kinds = []Kind{KindPasswd, KindShadow, KindGroup, KindGshadow, KindSudoers,
	KindAuthorizedKeys, KindSSHDConfig, KindDiff, KindHash}

// Change types emitted by the consumers.
const (
	ChangeUserAdded            = "user-added"
	ChangeUserRemoved          = "user-removed"
	ChangeUserModified         = "user-modified"
	ChangePasswordFieldChanged = "password-field-changed"
	ChangePasswordChanged      = "password-changed"
	ChangePasswordLocked       = "password-locked"
	ChangePasswordUnlocked     = "password-unlocked"
	ChangePasswordEmptied      = "password-emptied"
	ChangeAgingChanged         = "aging-changed"
	ChangeGroupAdded           = "group-added"
	ChangeGroupRemoved         = "group-removed"
	ChangeGroupModified        = "group-modified"
	ChangeGroupMemberAdded     = "group-member-added"
	ChangeGroupMemberRemoved   = "group-member-removed"
	ChangeGroupPasswordChanged = "group-password-changed"
	ChangeGroupAdminAdded      = "group-admin-added"
	ChangeGroupAdminRemoved    = "group-admin-removed"
	ChangeSudoRuleAdded        = "sudo-rule-added"
	ChangeSudoRuleRemoved      = "sudo-rule-removed"
	ChangeIncludeAdded         = "include-added"
	ChangeIncludeRemoved       = "include-removed"
	ChangeKeyAdded             = "key-added"
	ChangeKeyRemoved           = "key-removed"
	ChangeKeyOptionsChanged    = "key-options-changed"
	ChangeKeyCommentChanged    = "key-comment-changed"
	ChangeOptionAdded          = "option-added"
	ChangeOptionRemoved        = "option-removed"
	ChangeOptionChanged        = "option-changed"
	ChangeLinesChanged         = "lines-changed"
	ChangeContentChanged       = "content-changed"
	ChangeAttributesChanged    = "attributes-changed"
)

// FileInfo is what the agent stat'ed when it read the file.
type FileInfo struct {
	// Size is st_size in bytes.
	Size int64
	// Mode is st_mode: file type and permission bits.
	Mode uint32
	// UID and GID are the owner (st_uid, st_gid).
	UID, GID uint32
	// MtimeNS and CtimeNS are st_mtime and st_ctime in nanoseconds since the epoch.
	MtimeNS, CtimeNS int64
}

// Input is one observation of a file.
type Input struct {
	// Path is the file's absolute path; sudoers uses it to resolve relative includes.
	Path string
	// Content is the file's bytes, nil when the file is absent (deleted).
	Content []byte
	// Info is the file's metadata, nil when absent.
	Info *FileInfo
}

// Problem is a malformed line: reported, never fatal, never a panic.
// Msg never quotes a secret (no hash, no key material beyond a fingerprint);
// in practice it quotes no file content at all except sshd keyword names and
// SSH key types.
type Problem struct {
	// Line is the 1-based line number (0 when it concerns the whole file).
	Line int `json:"line"`
	// Msg says what is wrong.
	Msg string `json:"msg"`
}

// Change is one semantic change.
type Change struct {
	// Type is one of the Change* constants.
	Type string `json:"type"`
	// Name identifies the object changed: user, group, option, key fingerprint, sudo rule subject...
	Name string `json:"name,omitempty"`
	// Fields are the changed field names, sorted.
	Fields []string `json:"fields,omitempty"`
	// Old holds old values of changed non-secret fields.
	Old map[string]string `json:"old,omitempty"`
	// New holds new values of changed non-secret fields.
	New map[string]string `json:"new,omitempty"`
	// Flags mark what deserves attention, e.g. "uid-0", "second-uid-0", "nopasswd", "all", "locked". Sorted.
	Flags []string `json:"flags,omitempty"`
	// Line is the line in the current file (in the previous one for removals), when known.
	Line int `json:"line,omitempty"`
	// Text is a sudo rule's text or a diff hunk, already redacted.
	Text string `json:"text,omitempty"`
}

// State is a consumer's parsed view of a file: JSON-serializable (the state
// store persists it across restarts), and it never contains a secret (for
// shadow: a keyed fingerprint of the hash, not the hash).
type State = json.RawMessage

// Consumer parses one kind of file and diffs its states.
type Consumer interface {
	// Kind returns the consumer's kind.
	Kind() Kind
	// Parse reads a file into its state. It never panics, whatever the bytes.
	Parse(in Input) (State, []Problem, error)
	// Diff lists the changes from prev to cur. prev == nil means "no previous
	// observation": return nil (a baseline, no changes). Deterministic order.
	// See the package documentation for absent files.
	Diff(prev, cur State) ([]Change, error)
}

// Options configure a consumer.
type Options struct {
	// Key is a per-host secret (>= 16 bytes) for keyed fingerprints
	// (HMAC-SHA256). Required by passwd, shadow, gshadow and diff; ignored by
	// the others.
	Key []byte
	// DiffMaxBytes limits the unified diff text of the diff consumer
	// (default 64 KiB).
	DiffMaxBytes int
	// Redact lists patterns of lines the diff consumer replaces by
	// "[REDACTED sha256:<12 hex of HMAC(key, line)>]". nil means
	// DefaultRedact; a non-nil empty slice disables pattern redaction (PEM
	// private key blocks are redacted regardless). To extend the defaults,
	// append to DefaultRedact.
	Redact []*regexp.Regexp
}

// DefaultDiffMaxBytes is the default Options.DiffMaxBytes.
const DefaultDiffMaxBytes = 64 << 10

// MinKeyLen is the minimum length of Options.Key.
const MinKeyLen = 16

// DefaultRedact are the default redaction patterns of the diff consumer:
// lines where password, passwd, secret, token, api_key or private_key
// (case-insensitive, possibly as part of a longer name and quoted) is
// followed by '=' or ':'. PEM private key blocks ("-----BEGIN ... PRIVATE
// KEY-----" to the matching END line) are always redacted as a whole by the
// diff consumer; the pattern below catches their BEGIN/END lines too.
var DefaultRedact = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(passw(or)?d|secret|token|api[_-]?key|private[_-]?key)[\w.-]*["']?\s*[:=]`),
	regexp.MustCompile(`-----(BEGIN|END) [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`),
}

// NewAll returns one consumer of every kind (Kinds), by kind: what the
// agent and the scan parse with.
func NewAll(opts Options) (map[string]Consumer, error) {
	out := make(map[string]Consumer, len(Kinds))
	for _, k := range Kinds {
		c, err := New(k, opts)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", k, err)
		}
		out[string(k)] = c
	}
	return out, nil
}

// New returns the consumer for a kind.
func New(kind Kind, opts Options) (Consumer, error) {
	needKey := false
	switch kind {
	case KindPasswd, KindShadow, KindGshadow, KindDiff:
		needKey = true
	case KindGroup, KindSudoers, KindAuthorizedKeys, KindSSHDConfig, KindHash:
	default:
		return nil, fmt.Errorf("consumer: unknown kind %q", string(kind))
	}
	if needKey && len(opts.Key) < MinKeyLen {
		return nil, fmt.Errorf("consumer: %s needs a key of at least %d bytes, got %d", kind, MinKeyLen, len(opts.Key))
	}
	key := append([]byte(nil), opts.Key...)
	switch kind {
	case KindPasswd:
		return passwdConsumer{key: key}, nil
	case KindShadow:
		return shadowConsumer{key: key}, nil
	case KindGroup:
		return groupConsumer{}, nil
	case KindGshadow:
		return gshadowConsumer{key: key}, nil
	case KindSudoers:
		return sudoersConsumer{}, nil
	case KindAuthorizedKeys:
		return authKeysConsumer{}, nil
	case KindSSHDConfig:
		return sshdConsumer{}, nil
	case KindDiff:
		max := opts.DiffMaxBytes
		if max <= 0 {
			max = DefaultDiffMaxBytes
		}
		redact := opts.Redact
		if redact == nil {
			redact = DefaultRedact
		}
		return diffConsumer{key: key, max: max, redact: append([]*regexp.Regexp(nil), redact...)}, nil
	default: // KindHash
		return hashConsumer{}, nil
	}
}

// KindFor infers a kind from a well-known path: /etc/passwd, /etc/shadow,
// /etc/group, /etc/gshadow, /etc/sudoers and files in /etc/sudoers.d,
// files named authorized_keys or authorized_keys2 (wherever they are, usually
// ~/.ssh), /etc/ssh/sshd_config and /etc/ssh/sshd_config.d/*.conf. Any other
// path gives "" and the caller decides (typically diff or hash).
func KindFor(p string) Kind {
	if p == "" {
		return ""
	}
	p = path.Clean(p)
	switch p {
	case "/etc/passwd":
		return KindPasswd
	case "/etc/shadow":
		return KindShadow
	case "/etc/group":
		return KindGroup
	case "/etc/gshadow":
		return KindGshadow
	case "/etc/sudoers":
		return KindSudoers
	case "/etc/ssh/sshd_config":
		return KindSSHDConfig
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	switch {
	case dir == "/etc/sudoers.d":
		return KindSudoers
	case base == "authorized_keys" || base == "authorized_keys2":
		return KindAuthorizedKeys
	case dir == "/etc/ssh/sshd_config.d" && strings.HasSuffix(base, ".conf"):
		return KindSSHDConfig
	}
	return ""
}

// Includes lists the files and directories named by include directives in a
// sudoers state (#include, @include, #includedir, @includedir, resolved
// relative to the sudoers file's directory as sudo does) or an sshd_config
// state (Include, relative paths resolved against /etc/ssh as sshd does; the
// patterns may be globs for the caller to expand). It returns nil for other
// kinds and for states it cannot read. Order of appearance, no duplicates.
func Includes(st State) []string {
	var h stateHeader
	if err := json.Unmarshal(st, &h); err != nil {
		return nil
	}
	var incs []includeEntry
	switch h.Kind {
	case KindSudoers:
		var s sudoersState
		if json.Unmarshal(st, &s) != nil {
			return nil
		}
		incs = s.Includes
	case KindSSHDConfig:
		var s sshdState
		if json.Unmarshal(st, &s) != nil {
			return nil
		}
		incs = s.Includes
	default:
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, inc := range incs {
		if !seen[inc.Resolved] {
			seen[inc.Resolved] = true
			out = append(out, inc.Resolved)
		}
	}
	return out
}

// stateVersion is the version of the State layout.
const stateVersion = 1

// stateHeader is the part common to every State.
type stateHeader struct {
	V      int  `json:"v"`
	Kind   Kind `json:"kind"`
	Absent bool `json:"absent,omitempty"`
}

func (h *stateHeader) header() *stateHeader { return h }

type headed interface{ header() *stateHeader }

// marshalState stamps the header and serializes a state.
func marshalState(kind Kind, absent bool, st headed) (State, error) {
	h := st.header()
	h.V, h.Kind, h.Absent = stateVersion, kind, absent
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("consumer: %s: encoding state: %w", kind, err)
	}
	return State(b), nil
}

// errNilState is returned by Diff when cur is missing.
var errNilState = errors.New("consumer: current state is empty")

// pairByKey pairs two states' entries by key for Diff: each current entry,
// in order, with the previous entry of the same key (nil when it is new);
// then each previous entry whose key is gone, in order.
func pairByKey[E any](prev, cur []E, key func(*E) string, each func(old, cur *E), gone func(old *E)) {
	old := make(map[string]*E, len(prev))
	for i := range prev {
		old[key(&prev[i])] = &prev[i]
	}
	now := make(map[string]bool, len(cur))
	for i := range cur {
		k := key(&cur[i])
		now[k] = true
		each(old[k], &cur[i])
	}
	for i := range prev {
		if !now[key(&prev[i])] {
			gone(&prev[i])
		}
	}
}

// decodePair decodes prev and cur for Diff. ok is false when there is nothing
// to diff (no previous observation, or the file is now absent). An absent prev
// decodes as the zero (empty) state.
func decodePair[T any, PT interface {
	*T
	headed
}](kind Kind, prev, cur State) (p, c *T, ok bool, err error) {
	if len(cur) == 0 {
		return nil, nil, false, errNilState
	}
	c = new(T)
	if err := decodeState(kind, cur, PT(c)); err != nil {
		return nil, nil, false, fmt.Errorf("consumer: %s: current state: %w", kind, err)
	}
	if len(prev) == 0 || PT(c).header().Absent {
		return nil, nil, false, nil
	}
	p = new(T)
	if err := decodeState(kind, prev, PT(p)); err != nil {
		return nil, nil, false, fmt.Errorf("consumer: %s: previous state: %w", kind, err)
	}
	if PT(p).header().Absent {
		p = new(T)
	}
	return p, c, true, nil
}

func decodeState(kind Kind, st State, v headed) error {
	if err := json.Unmarshal(st, v); err != nil {
		// json errors can quote a byte or two of the input; states hold no
		// secrets, but say only what kind of failure it was.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("malformed JSON at offset %d", se.Offset)
		}
		return errors.New("state does not match the consumer's layout")
	}
	h := v.header()
	if h.Kind != kind {
		return fmt.Errorf("state is of kind %q, not %q", string(h.Kind), string(kind))
	}
	if h.V != stateVersion {
		return fmt.Errorf("unsupported state version %d", h.V)
	}
	return nil
}

// textLine is one physical line of a file.
type textLine struct {
	num int
	// text is the line, invalid UTF-8 replaced by U+FFFD: JSON would do
	// it anyway, and doing it first keeps names that differ only in
	// invalid bytes from colliding after a round trip through the state.
	text    string
	invalid bool
}

// splitText splits content into lines, dropping a trailing '\r' from each.
// The empty string after a final newline is not a line.
func splitText(content []byte) []textLine {
	var out []textLine
	n := 0
	for len(content) > 0 {
		n++
		i := bytes.IndexByte(content, '\n')
		var ln []byte
		if i < 0 {
			ln, content = content, nil
		} else {
			ln, content = content[:i], content[i+1:]
		}
		ln = bytes.TrimSuffix(ln, []byte{'\r'})
		tl := textLine{num: n, text: string(ln)}
		if !utf8.Valid(ln) {
			tl.text, tl.invalid = strings.ToValidUTF8(tl.text, "\uFFFD"), true
		}
		out = append(out, tl)
	}
	return out
}

// problems collects Problems.
type problems []Problem

func (p *problems) add(line int, format string, args ...any) {
	*p = append(*p, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// checkUTF8 reports invalid UTF-8 on a line.
// entries returns a file's lines that are not blank or comments: the loop
// every line-based consumer runs (each checks its lines' UTF-8 in order).
func entries(content []byte) []textLine {
	var out []textLine
	for _, l := range splitText(content) {
		if !isComment(l.text) {
			out = append(out, l)
		}
	}
	return out
}

func (p *problems) checkUTF8(l textLine) {
	if l.invalid {
		p.add(l.num, "invalid UTF-8 (replaced by U+FFFD)")
	}
}

// fingerprint is hex(HMAC-SHA256(key, s))[:16].
func fingerprint(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// flagSet builds a sorted, duplicate-free flag list.
func flagSet(flags ...string) []string {
	var out []string
	for _, f := range flags {
		if f != "" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	j := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[j-1] {
			out[j] = out[i]
			j++
		}
	}
	return out[:j]
}

// fieldDiff compares named fields of two records and returns the sorted
// names that differ with their old and new values.
func fieldDiff(old, cur map[string]string) (fields []string, o, n map[string]string) {
	for k, v := range cur {
		if old[k] != v {
			fields = append(fields, k)
		}
	}
	if len(fields) == 0 {
		return nil, nil, nil
	}
	sort.Strings(fields)
	o, n = map[string]string{}, map[string]string{}
	for _, f := range fields {
		o[f], n[f] = old[f], cur[f]
	}
	return fields, o, n
}

// setDiff returns the elements of b missing from a, and of a missing from b,
// each sorted and without duplicates.
func setDiff(a, b []string) (added, removed []string) {
	in := func(s []string) map[string]bool {
		m := make(map[string]bool, len(s))
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	for x := range mb {
		if !ma[x] {
			added = append(added, x)
		}
	}
	for x := range ma {
		if !mb[x] {
			removed = append(removed, x)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// uniqueKey returns name for its first occurrence and name#N for the Nth, so
// that duplicate entries stay visible in diffs.
func uniqueKey(seen map[string]int, name string) (key string, dup bool) {
	seen[name]++
	if n := seen[name]; n > 1 {
		return fmt.Sprintf("%s#%d", name, n), true
	}
	return name, false
}

// includeEntry is an include directive of sudoers or sshd_config.
type includeEntry struct {
	// Directive is the directive as written (#include, @includedir, Include...).
	Directive string `json:"directive"`
	// Path is the path as written.
	Path string `json:"path"`
	// Resolved is the path made absolute as the program would.
	Resolved string `json:"resolved"`
	// Line is the line number of the directive.
	Line int `json:"line"`
}

// diffIncludes reports include-added and include-removed, keyed by
// directive and resolved path.
func diffIncludes(prev, cur []includeEntry) []Change {
	id := func(e includeEntry) string {
		return strings.TrimLeft(strings.ToLower(e.Directive), "#@") + "\x00" + e.Resolved
	}
	pm, cm := map[string]bool{}, map[string]bool{}
	for _, e := range prev {
		pm[id(e)] = true
	}
	for _, e := range cur {
		cm[id(e)] = true
	}
	var out []Change
	done := map[string]bool{}
	for _, e := range prev {
		if k := id(e); !cm[k] && !done[k] {
			done[k] = true
			out = append(out, Change{Type: ChangeIncludeRemoved, Name: e.Resolved, Old: map[string]string{"directive": e.Directive, "path": e.Path}, Line: e.Line, Flags: []string{"include"}})
		}
	}
	for _, e := range cur {
		if k := id(e); !pm[k] && !done[k] {
			done[k] = true
			out = append(out, Change{Type: ChangeIncludeAdded, Name: e.Resolved, New: map[string]string{"directive": e.Directive, "path": e.Path}, Line: e.Line, Flags: []string{"include"}})
		}
	}
	return out
}
