package agent

import (
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/state"
)

// MachineIDFile is the host's identity that host.id takes by default.
const MachineIDFile = "/etc/machine-id"

// identity returns the record sequence and host.id of a run: those of
// Options, else agent.state_dir's sequence (opened and locked here: own is
// then the agent's to close) and agent.host_id's id.
func identity(opt Options) (seq, own *state.Sequence, hostID string, err error) {
	cfg := opt.Config
	seq = opt.Sequence
	if seq == nil {
		if own, err = state.OpenSequence(cfg.Agent.StateDir); err != nil {
			return nil, nil, "", err
		}
		seq = own
	}
	hostID = opt.HostID
	if hostID == "" {
		if hostID, _, err = state.HostID(cfg.Agent.StateDir, cfg.Agent.HostID, MachineIDFile); err != nil {
			if own != nil {
				own.Close()
			}
			return nil, nil, "", err
		}
	}
	return seq, own, hostID, nil
}

func (a *Agent) closeSequence() {
	if a.ownSeq != nil {
		if err := a.ownSeq.Close(); err != nil {
			a.opt.Log.Warn().Err(err).Msg("saving the record sequence")
		}
	}
}

// spoolSource is an output with spools (output.Fanout): their drops are
// reported as spool-dropped records, their counters are in Stats.
type spoolSource interface {
	SpoolStats() []output.SpoolStats
}

// checkSpools writes a spool-dropped record for each network output whose
// spool dropped records since the last check (full, or too old).
func (a *Agent) checkSpools() {
	src, ok := a.opt.Out.(spoolSource)
	if !ok {
		return
	}
	for _, st := range src.SpoolStats() {
		if last := a.spoolDropped[st.Output]; st.Dropped > last {
			a.spoolDropped[st.Output] = st.Dropped
			a.rec.spoolDropped(st, st.Dropped-last)
		}
	}
}
