package config

import (
	"encoding"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-multierror"
)

// node is a TOML value with where it was written, so that every error can
// name its file and line after drop-ins are merged.
type node struct {
	file  string
	line  int
	table map[string]*node // a table
	array []*node          // an array of tables
	val   any              // anything else
}

func (n *node) isTable() bool { return n != nil && n.table != nil }
func (n *node) isArray() bool { return n != nil && n.array != nil }

// parseNode parses one file into a node tree.
func parseNode(name string, data []byte) (*node, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// At the end of the text the parser says line 0; and its
			// message may quote raw bytes of the file (a NUL, an escape
			// sequence for the terminal): escape them.
			line := max(pe.Position.Line, 1)
			return nil, &Error{Where: fmt.Sprintf("%s:%d", name, line), Msg: "TOML syntax: " + printable(pe.Message)}
		}
		return nil, &Error{Where: name, Msg: "TOML: " + printable(err.Error())}
	}
	lines := locate(data)
	return build(name, lines, nil, m), nil
}

// printable escapes control characters and invalid UTF-8 (as Go quotes
// them) so that an error about a hostile file prints as one plain line.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
			} else {
				b.WriteRune(r)
			}
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func build(file string, lines map[string]int, path []string, v any) *node {
	key := strings.Join(path, ".")
	n := &node{file: file, line: lines[key]}
	switch t := v.(type) {
	case map[string]any:
		n.table = map[string]*node{}
		for k, sub := range t {
			n.table[k] = build(file, lines, append(append([]string(nil), path...), k), sub)
		}
	case []map[string]any:
		n.array = []*node{}
		for i, sub := range t {
			n.array = append(n.array, build(file, lines, append(append([]string(nil), path...), strconv.Itoa(i)), sub))
		}
	default:
		n.val = v
	}
	return n
}

// merge lays b over a: tables merge key by key, arrays of tables append,
// everything else takes b's value.
func merge(a, b *node) *node {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	switch {
	case a.isTable() && b.isTable():
		out := &node{file: a.file, line: a.line, table: map[string]*node{}}
		for k, v := range a.table {
			out.table[k] = v
		}
		for k, v := range b.table {
			out.table[k] = merge(out.table[k], v)
		}
		return out
	case a.isArray() && b.isArray():
		return &node{file: a.file, line: a.line, array: append(append([]*node(nil), a.array...), b.array...)}
	}
	return b
}

// where names the file and line of the deepest node on path.
func (n *node) where(path []string) string {
	best := n
	cur := n
	for _, p := range path {
		if cur == nil {
			break
		}
		switch {
		case cur.isTable():
			cur = cur.table[p]
		case cur.isArray():
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(cur.array) {
				cur = nil
			} else {
				cur = cur.array[i]
			}
		default:
			cur = nil
		}
		if cur != nil {
			best = cur
		}
	}
	if best == nil {
		return "(config)"
	}
	if best.line > 0 {
		return fmt.Sprintf("%s:%d", best.file, best.line)
	}
	return best.file
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// decode fills v (a pointer to a struct) from a table node, collecting every
// unknown key and wrong type.
func decode(n *node, v any, path []string) error {
	var errs *multierror.Error
	decodeValue(n, reflect.ValueOf(v).Elem(), path, &errs)
	return errs.ErrorOrNil()
}

func decodeValue(n *node, rv reflect.Value, path []string, errs **multierror.Error) {
	bad := func(format string, args ...any) {
		*errs = multierror.Append(*errs, &Error{Where: n.where(nil), Key: strings.Join(path, "."), Msg: fmt.Sprintf(format, args...)})
	}
	if rv.CanAddr() && rv.Addr().Type().Implements(textUnmarshaler) {
		s, ok := n.val.(string)
		if !ok {
			bad("want a string, got %s", kindOf(n))
			return
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			bad("%v", err)
		}
		return
	}
	switch rv.Kind() {
	case reflect.Struct:
		if !n.isTable() {
			bad("want a table, got %s", kindOf(n))
			return
		}
		fields := map[string]int{}
		t := rv.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("toml")
			if tag != "" && tag != "-" {
				fields[tag] = i
			}
		}
		for _, k := range slices.Sorted(maps.Keys(n.table)) {
			sub := n.table[k]
			p := append(append([]string(nil), path...), k)
			i, ok := fields[k]
			if !ok {
				*errs = multierror.Append(*errs, &Error{Where: sub.where(nil), Key: strings.Join(p, "."), Msg: "unknown key"})
				continue
			}
			decodeValue(sub, rv.Field(i), p, errs)
		}
		if f, ok := t.FieldByName("Source"); ok && f.Type.Kind() == reflect.String {
			rv.FieldByName("Source").SetString(n.where(nil))
		}
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Struct {
			if !n.isArray() {
				bad("want an array of tables ([[%s]]), got %s", path[len(path)-1], kindOf(n))
				return
			}
			out := reflect.MakeSlice(rv.Type(), len(n.array), len(n.array))
			for i, sub := range n.array {
				decodeValue(sub, out.Index(i), append(append([]string(nil), path...), strconv.Itoa(i)), errs)
			}
			rv.Set(out)
			return
		}
		arr, ok := n.val.([]any)
		if !ok {
			bad("want an array, got %s", kindOf(n))
			return
		}
		out := reflect.MakeSlice(rv.Type(), 0, len(arr))
		for i, item := range arr {
			s, ok := item.(string)
			if !ok || rv.Type().Elem().Kind() != reflect.String {
				bad("item %d: want a string, got %T", i, item)
				continue
			}
			out = reflect.Append(out, reflect.ValueOf(s))
		}
		rv.Set(out)
	case reflect.String:
		s, ok := n.val.(string)
		if !ok {
			bad("want a string, got %s", kindOf(n))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := n.val.(bool)
		if !ok {
			bad("want true or false, got %s", kindOf(n))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, ok := n.val.(int64)
		if !ok {
			bad("want an integer, got %s", kindOf(n))
			return
		}
		rv.SetInt(i)
	default:
		bad("unsupported field type %s", rv.Type())
	}
}

func kindOf(n *node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.isTable():
		return "a table"
	case n.isArray():
		return "an array of tables"
	}
	switch v := n.val.(type) {
	case string:
		return fmt.Sprintf("a string (%q)", v)
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%g)", v)
	case bool:
		return fmt.Sprintf("a boolean (%t)", v)
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", n.val)
}

// locate maps each key path ("sensor.hooks", "watch.1.path", "watch.1") to
// the line it is written on. It reads TOML's line structure only as far as
// needed for that: headers, key = value lines, and values spanning lines.
// BurntSushi/toml records each key's position while parsing, but keeps it
// unexported (v1.6.0, the newest: MetaData offers IsDefined, Type, Keys and
// Undecoded, none with a line), so the lines are found here.
func locate(data []byte) map[string]int {
	out := map[string]int{}
	counts := map[string]int{}
	var prefix []string
	lines := strings.Split(string(data), "\n")
	depth := 0    // open [ or { of a multi-line value
	inMulti := "" // open ''' or """
	for i, raw := range lines {
		ln := i + 1
		line := strings.TrimSpace(raw)
		if inMulti != "" {
			if strings.Contains(line, inMulti) {
				inMulti = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDelta(line)
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[[") {
			name := strings.TrimSpace(strings.Trim(stripComment(line), "[] "))
			idx := counts[name]
			counts[name]++
			prefix = append(splitKey(name), strconv.Itoa(idx))
			if _, ok := out[strings.Join(prefix, ".")]; !ok {
				out[strings.Join(prefix, ".")] = ln
			}
			continue
		}
		if line[0] == '[' {
			name := strings.TrimSpace(strings.Trim(stripComment(line), "[] "))
			prefix = rebase(splitKey(name), counts)
			if _, ok := out[strings.Join(prefix, ".")]; !ok {
				out[strings.Join(prefix, ".")] = ln
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key := append(append([]string(nil), prefix...), splitKey(strings.TrimSpace(k))...)
		for j := len(prefix) + 1; j <= len(key); j++ {
			if _, ok := out[strings.Join(key[:j], ".")]; !ok {
				out[strings.Join(key[:j], ".")] = ln
			}
		}
		v = strings.TrimSpace(v)
		for _, q := range []string{`"""`, `'''`} {
			if strings.HasPrefix(v, q) && !strings.Contains(v[3:], q) {
				inMulti = q
			}
		}
		if inMulti == "" {
			depth = bracketDelta(v)
			if depth < 0 {
				depth = 0
			}
		}
	}
	return out
}

// rebase turns a header inside an array of tables ("watch.x") into the path
// of the array's latest element ("watch.3.x").
func rebase(parts []string, counts map[string]int) []string {
	var out []string
	for i, p := range parts {
		out = append(out, p)
		if n, ok := counts[strings.Join(parts[:i+1], ".")]; ok && n > 0 {
			out = append(out, strconv.Itoa(n-1))
		}
	}
	return out
}

func splitKey(k string) []string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}

func stripComment(s string) string {
	if i := strings.Index(s, "#"); i >= 0 {
		return s[:i]
	}
	return s
}

// bracketDelta counts [ and { opened minus closed outside strings.
func bracketDelta(s string) int {
	d := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return d
		case c == '[' || c == '{':
			d++
		case c == ']' || c == '}':
			d--
		}
	}
	return d
}
