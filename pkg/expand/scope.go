package expand

import (
	"path/filepath"

	"github.com/vigil-fim/vigil/pkg/config"
)

// Scope answers "would the rules list this path if it existed?" (as any
// type of entry: Walk lists them all), so that a stored path missing from
// the expansion can be told apart: an entry gone from a watched place
// (deleted) or a path no longer watched (pruned).
type Scope struct {
	maxDepth int
	rules    []scopeRule
}

type scopeRule struct {
	r       *config.Watch
	pattern string   // a glob rule's pattern
	roots   []string // the configured path and what it resolves to
}

// NewScope is the scope of rules, recursive ones to maxDepth.
func NewScope(rules []config.Watch, maxDepth int) *Scope {
	s := &Scope{maxDepth: MaxDepth(maxDepth)}
	for i := range rules {
		r := &rules[i]
		if r.Path == "" {
			continue
		}
		p := filepath.Clean(r.Path)
		sr := scopeRule{r: r}
		var cands []string
		if HasMeta(p) {
			sr.pattern = p
			cands, _ = filepath.Glob(p)
		} else {
			sr.roots = append(sr.roots, p)
			cands = []string{p}
		}
		for _, c := range cands {
			if rp, link := Resolve(c); link != "" {
				sr.roots = append(sr.roots, rp)
			}
		}
		s.rules = append(s.rules, sr)
	}
	return s
}

// Covers reports whether a rule would list p.
func (s *Scope) Covers(p string) bool {
	for i := range s.rules {
		sr := &s.rules[i]
		depth := Depth(sr.r, s.maxDepth)
		for _, root := range sr.roots {
			if Under(root, p) && Level(root, p) <= depth && !excludedBelow(sr.r, root, p) {
				return true
			}
		}
		if sr.pattern != "" {
			a := p
			for l := 0; l <= depth; l++ {
				if ok, _ := filepath.Match(sr.pattern, a); ok {
					if !excludedBelow(sr.r, a, p) {
						return true
					}
					break
				}
				if a == "/" {
					break
				}
				a = filepath.Dir(a)
			}
		}
	}
	return false
}

// excludedBelow reports whether the walk from root would have left p out:
// p or a directory between it and root excluded.
func excludedBelow(r *config.Watch, root, p string) bool {
	for a := p; ; a = filepath.Dir(a) {
		if Excluded(r, a) {
			return true
		}
		if a == root || a == "/" || a == "." {
			return false
		}
	}
}
