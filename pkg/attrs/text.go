package attrs

import (
	"fmt"
	"strings"
)

// Lines describe the changes in text, one line per part (vigil scan's
// text output).
func (c *Changes) Lines() []string {
	if c == nil {
		return nil
	}
	var out []string
	acl := func(name string, a *ACLChange) {
		if a == nil {
			return
		}
		var parts []string
		ent := func(e ACLEntry) string {
			if e.ID != nil {
				return fmt.Sprintf("%s:%d %s", e.Tag, *e.ID, e.Perm)
			}
			return e.Tag + " " + e.Perm
		}
		for _, e := range a.Added {
			parts = append(parts, "+"+ent(e))
		}
		for _, e := range a.Removed {
			parts = append(parts, "-"+ent(e))
		}
		for _, e := range a.Changed {
			p := ACLEntry{Tag: e.Tag, ID: e.ID, Perm: e.Old}
			parts = append(parts, "~"+ent(p)+" -> "+e.New)
		}
		l := name + ": " + strings.Join(parts, ", ")
		if len(a.WriteGranted) > 0 {
			l += "; write granted to " + strings.Join(a.WriteGranted, ", ")
		}
		out = append(out, l)
	}
	acl("acl", c.ACL)
	acl("default acl", c.DefaultACL)
	if k := c.Caps; k != nil {
		l := "capabilities:"
		for _, n := range k.Added {
			l += " +" + n
		}
		for _, n := range k.Removed {
			l += " -" + n
		}
		if len(k.RootEquivalent) > 0 {
			l += " (root-equivalent: " + strings.Join(k.RootEquivalent, ", ") + ")"
		}
		out = append(out, l)
	}
	if f := c.Flags; f != nil {
		out = append(out, fmt.Sprintf("flags: set [%s] cleared [%s]", strings.Join(f.Set, " "), strings.Join(f.Cleared, " ")))
	}
	for _, l := range c.Labels {
		out = append(out, fmt.Sprintf("label %s: %q -> %q", l.Name, l.Old, l.New))
	}
	if x := c.Xattrs; x != nil {
		out = append(out, fmt.Sprintf("xattrs: added [%s] removed [%s] changed [%s]", strings.Join(x.Added, " "),
			strings.Join(x.Removed, " "), strings.Join(x.Changed, " ")))
	}
	return out
}
