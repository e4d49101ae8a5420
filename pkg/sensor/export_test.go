package sensor

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/vigil-fim/vigil/pkg/loader"
)

// PutLineage writes a lineage entry as the kernel would (tests only).
func (s *Sensor) PutLineage(tgid, root uint32, mgr uint8) error {
	lm := s.loaded.Coll.Maps[loader.MapLineage]
	if lm == nil {
		return fmt.Errorf("no map %s", loader.MapLineage)
	}
	return s.sys.wrap(lm).Update(tgid, lineageValue{Root: root, Mgr: mgr}, ebpf.UpdateAny)
}
