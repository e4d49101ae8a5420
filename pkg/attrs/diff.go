package attrs

import (
	"fmt"
	"sort"
)

// Changes is what differs between two Sets: the record's vigil.attributes
// (docs/events.md). Each part is nil when that part did not change.
type Changes struct {
	ACL        *ACLChange    `json:"acl,omitempty"`
	DefaultACL *ACLChange    `json:"default_acl,omitempty"`
	Caps       *CapsChange   `json:"capabilities,omitempty"`
	Flags      *FlagsChange  `json:"flags,omitempty"`
	Labels     []LabelChange `json:"labels,omitempty"`
	Xattrs     *XattrChange  `json:"xattrs,omitempty"`
}

// ACLChange lists the entries of an ACL added, removed and changed, and who
// can write now that could not before.
type ACLChange struct {
	Added   []ACLEntry       `json:"added"`
	Removed []ACLEntry       `json:"removed"`
	Changed []ACLEntryChange `json:"changed"`
	// WriteGranted are the subjects that gained write, the ACL mask
	// applied: "user:<uid>", "group:<gid>", "group_obj" (the owning group)
	// or "other". The owner (user_obj) is never listed.
	WriteGranted []string `json:"write_granted"`
	// Present is false when the ACL was removed altogether.
	Present bool `json:"present"`
}

// ACLEntryChange is an entry whose permissions changed.
type ACLEntryChange struct {
	Tag string  `json:"tag"`
	ID  *uint32 `json:"id,omitempty"`
	Old string  `json:"old"`
	New string  `json:"new"`
}

// CapsView is a file capability by names.
type CapsView struct {
	Permitted   []string `json:"permitted"`
	Inheritable []string `json:"inheritable"`
	Effective   bool     `json:"effective"`
	RootID      *uint32  `json:"rootid,omitempty"`
}

func capsView(c *Caps) *CapsView {
	if c == nil {
		return nil
	}
	return &CapsView{Permitted: nonNil(c.PermittedNames()), Inheritable: nonNil(c.InheritableNames()),
		Effective: c.Effective, RootID: c.RootID}
}

// CapsChange is a file capability added, removed or changed.
type CapsChange struct {
	// Old and New are nil when there was, or is, no capability.
	Old *CapsView `json:"old,omitempty"`
	New *CapsView `json:"new,omitempty"`
	// Added and Removed are capabilities gained and lost in the permitted
	// or inheritable sets.
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// RootEquivalent are the added capabilities that amount to root.
	RootEquivalent []string `json:"root_equivalent"`
}

// FlagsChange names the inode flags set and cleared.
type FlagsChange struct {
	Set     []string `json:"set"`
	Cleared []string `json:"cleared"`
	Old     []string `json:"old"`
	New     []string `json:"new"`
}

// LabelChange is a security label's old and new value ("" when absent).
type LabelChange struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// XattrChange names the other xattrs added, removed and whose value
// changed; values are never shown.
type XattrChange struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool {
	return c == nil || (c.ACL == nil && c.DefaultACL == nil && c.Caps == nil && c.Flags == nil &&
		len(c.Labels) == 0 && c.Xattrs == nil)
}

// Fields names the parts that changed, for scan's Finding.Fields:
// "acl", "default_acl", "capabilities", "flags", "labels", "xattrs".
func (c *Changes) Fields() []string {
	var out []string
	if c == nil {
		return nil
	}
	add := func(cond bool, n string) {
		if cond {
			out = append(out, n)
		}
	}
	add(c.ACL != nil, "acl")
	add(c.DefaultACL != nil, "default_acl")
	add(c.Caps != nil, "capabilities")
	add(c.Flags != nil, "flags")
	add(len(c.Labels) > 0, "labels")
	add(c.Xattrs != nil, "xattrs")
	return out
}

// WriteGrants are the ACL's new write grants to named users other than
// uid and to named groups other than gid: what ownership drift treats like
// a chown. A nil uid (gid) checks no user (group).
func (c *Changes) WriteGrants(uid, gid *uint32) []string {
	if c == nil || c.ACL == nil {
		return nil
	}
	var out []string
	for _, w := range c.ACL.WriteGranted {
		var id uint32
		switch {
		case sscan(w, "user:%d", &id):
			if uid != nil && id != *uid {
				out = append(out, w)
			}
		case sscan(w, "group:%d", &id):
			if gid != nil && id != *gid {
				out = append(out, w)
			}
		}
	}
	return out
}

func sscan(s, f string, id *uint32) bool {
	n, err := fmt.Sscanf(s, f, id)
	return err == nil && n == 1
}

// Diff compares two Sets of the same file, with the file's mode before
// and after (an absent ACL's grants come from the mode bits). A nil Set
// is one never recorded (a store written before attributes were kept):
// nothing is compared. Flags are compared only when both sides have them.
func Diff(old, cur *Set, oldMode, curMode uint32) *Changes {
	if old == nil || cur == nil {
		return nil
	}
	c := &Changes{
		ACL:        diffACL(old.ACL, cur.ACL, oldMode, curMode),
		DefaultACL: diffACL(old.DefaultACL, cur.DefaultACL, 0, 0),
		Caps:       diffCaps(old.Caps, cur.Caps),
		Labels:     diffLabels(old.Labels, cur.Labels),
		Xattrs:     diffXattrs(old.Xattrs, cur.Xattrs),
	}
	if old.Flags != nil && cur.Flags != nil && *old.Flags != *cur.Flags {
		c.Flags = &FlagsChange{Set: FlagNames(*cur.Flags &^ *old.Flags), Cleared: FlagNames(*old.Flags &^ *cur.Flags),
			Old: FlagNames(*old.Flags), New: FlagNames(*cur.Flags)}
	}
	if c.Empty() {
		return nil
	}
	return c
}

func diffACL(old, cur []ACLEntry, oldMode, curMode uint32) *ACLChange {
	if old == nil && cur == nil {
		return nil
	}
	om, cm := aclMap(old), aclMap(cur)
	ch := &ACLChange{Added: []ACLEntry{}, Removed: []ACLEntry{}, Changed: []ACLEntryChange{}, WriteGranted: []string{},
		Present: cur != nil}
	for _, e := range cur {
		o, ok := om[e.key()]
		switch {
		case !ok:
			ch.Added = append(ch.Added, e)
		case o.Perm != e.Perm:
			ch.Changed = append(ch.Changed, ACLEntryChange{Tag: e.Tag, ID: e.ID, Old: o.Perm, New: e.Perm})
		}
	}
	for _, e := range old {
		if _, ok := cm[e.key()]; !ok {
			ch.Removed = append(ch.Removed, e)
		}
	}
	if len(ch.Added) == 0 && len(ch.Removed) == 0 && len(ch.Changed) == 0 && (old == nil) == (cur == nil) {
		return nil
	}
	ow, cw := writers(old, oldMode), writers(cur, curMode)
	for w := range cw {
		if !ow[w] {
			ch.WriteGranted = append(ch.WriteGranted, w)
		}
	}
	sort.Strings(ch.WriteGranted)
	return ch
}

func aclMap(es []ACLEntry) map[string]ACLEntry {
	m := make(map[string]ACLEntry, len(es))
	for _, e := range es {
		m[e.key()] = e
	}
	return m
}

// writers are the subjects but the owner that may write under an ACL (the
// mask applied) or, without one, under the mode's group and other bits.
func writers(es []ACLEntry, mode uint32) map[string]bool {
	out := map[string]bool{}
	if es == nil {
		if mode&0o020 != 0 {
			out[TagGroupObj] = true
		}
		if mode&0o002 != 0 {
			out[TagOther] = true
		}
		return out
	}
	maskW := true
	for _, e := range es {
		if e.Tag == TagMask {
			maskW = e.Perm[1] == 'w'
		}
	}
	for _, e := range es {
		w := e.Perm[1] == 'w'
		switch e.Tag {
		case TagUser, TagGroup, TagGroupObj:
			if w && maskW {
				out[e.key()] = true
			}
		case TagOther:
			if w {
				out[e.key()] = true
			}
		}
	}
	return out
}

func diffCaps(old, cur *Caps) *CapsChange {
	switch {
	case old == nil && cur == nil:
		return nil
	case old != nil && cur != nil && *old == *cur && eqID(old.RootID, cur.RootID):
		return nil
	case old != nil && cur != nil && old.Permitted == cur.Permitted && old.Inheritable == cur.Inheritable &&
		old.Effective == cur.Effective && eqID(old.RootID, cur.RootID):
		return nil // only the revision differs
	}
	var om, cm uint64
	if old != nil {
		om = old.Permitted | old.Inheritable
	}
	if cur != nil {
		cm = cur.Permitted | cur.Inheritable
	}
	added := nonNil(capList(cm &^ om))
	return &CapsChange{Old: capsView(old), New: capsView(cur), Added: added, Removed: nonNil(capList(om &^ cm)),
		RootEquivalent: nonNil(RootEquivalent(added))}
}

func eqID(a, b *uint32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func diffLabels(old, cur map[string]string) []LabelChange {
	var out []LabelChange
	for n, v := range cur {
		if o, ok := old[n]; !ok || o != v {
			out = append(out, LabelChange{Name: n, Old: o, New: v})
		}
	}
	for n, o := range old {
		if _, ok := cur[n]; !ok {
			out = append(out, LabelChange{Name: n, Old: o})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func diffXattrs(old, cur map[string]string) *XattrChange {
	c := &XattrChange{Added: []string{}, Removed: []string{}, Changed: []string{}}
	for n, v := range cur {
		o, ok := old[n]
		switch {
		case !ok:
			c.Added = append(c.Added, n)
		case o != v:
			c.Changed = append(c.Changed, n)
		}
	}
	for n := range old {
		if _, ok := cur[n]; !ok {
			c.Removed = append(c.Removed, n)
		}
	}
	if len(c.Added)+len(c.Removed)+len(c.Changed) == 0 {
		return nil
	}
	sort.Strings(c.Added)
	sort.Strings(c.Removed)
	sort.Strings(c.Changed)
	return c
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
