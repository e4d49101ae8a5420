package agent

import (
	"encoding/json"
	"sort"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/attrs"
)

// attrFields adds the parts of an attribute change (attrs.Changes) as
// vigil.acl, vigil.default_acl, vigil.capabilities, vigil.flags,
// vigil.labels and vigil.xattrs.
func attrFields(v *zerolog.Event, c *attrs.Changes) {
	if c == nil {
		return
	}
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	var parts map[string]json.RawMessage
	if json.Unmarshal(b, &parts) != nil {
		return
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.RawJSON(k, parts[k])
	}
}
