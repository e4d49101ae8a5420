package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// hashConsumer keeps a file's SHA-256 and stat attributes. It is for files
// no other consumer understands, binaries included. The hash is a plain
// SHA-256 (comparable with sha256sum); use the diff consumer for small text
// files that may hold secrets.
type hashConsumer struct{}

// sIFMT masks the file type bits of st_mode.
const sIFMT = 0o170000

type hashState struct {
	stateHeader
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	HasInfo bool   `json:"has_info,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	UID     uint32 `json:"uid,omitempty"`
	GID     uint32 `json:"gid,omitempty"`
	MtimeNS int64  `json:"mtime_ns,omitempty"`
}

// Kind implements Consumer.
func (hashConsumer) Kind() Kind { return KindHash }

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (hashConsumer) Parse(in Input) (State, []Problem, error) {
	st := &hashState{}
	if in.Content == nil {
		return absentState(marshalState(KindHash, true, st))
	}
	sum := sha256.Sum256(in.Content)
	st.SHA256 = hex.EncodeToString(sum[:])
	st.Size = int64(len(in.Content))
	if in.Info != nil {
		st.HasInfo = true
		st.Mode, st.UID, st.GID, st.MtimeNS = in.Info.Mode, in.Info.UID, in.Info.GID, in.Info.MtimeNS
	}
	s, err := marshalState(KindHash, false, st)
	return s, nil, err
}

// Diff implements Consumer (see the package documentation for absent files).
func (hashConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[hashState](KindHash, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	var out []Change
	if p.V == 0 { // previously absent
		return []Change{{Type: ChangeContentChanged, New: map[string]string{"sha256": s.SHA256, "size": strconv.FormatInt(s.Size, 10)}}}, nil
	}
	if p.SHA256 != s.SHA256 || p.Size != s.Size {
		fields := []string{"sha256"}
		if p.Size != s.Size {
			fields = append(fields, "size")
		}
		out = append(out, Change{Type: ChangeContentChanged, Fields: fields,
			Old: map[string]string{"sha256": p.SHA256, "size": strconv.FormatInt(p.Size, 10)},
			New: map[string]string{"sha256": s.SHA256, "size": strconv.FormatInt(s.Size, 10)}})
	}
	if p.HasInfo && s.HasInfo {
		if fields, o, n := fieldDiff(p.attrs(), s.attrs()); fields != nil {
			var flags []string
			if s.Mode&0o6000 != 0 && s.Mode&0o6000 != p.Mode&0o6000 {
				flags = append(flags, "setuid") // setuid or setgid bit newly set
			}
			out = append(out, Change{Type: ChangeAttributesChanged, Fields: fields, Old: o, New: n, Flags: flags})
		}
	}
	return out, nil
}

// attrs formats the compared attributes: mode in octal (permission bits;
// "type" appears when the file type bits differ), mtime in RFC 3339 UTC.
func (h *hashState) attrs() map[string]string {
	return map[string]string{
		"mode":  fmt.Sprintf("%04o", h.Mode&0o7777),
		"type":  fmt.Sprintf("%06o", h.Mode&sIFMT),
		"uid":   strconv.FormatUint(uint64(h.UID), 10),
		"gid":   strconv.FormatUint(uint64(h.GID), 10),
		"mtime": time.Unix(0, h.MtimeNS).UTC().Format(time.RFC3339Nano),
	}
}
