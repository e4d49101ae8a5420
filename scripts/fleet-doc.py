#!/usr/bin/env python3
"""Prints docs/benchmarks.md's fleet section from TestFleet's report (VIGIL_FLEET_REPORT)."""
import json
import sys

r = json.load(open(sys.argv[1]))
print(f"""
## Fleet: 8 agents and 1,000 hosts through one rsyslog relay

`cmd/vigil`'s `TestFleet` (privileged, host only; `make bench` runs it for {r['seconds']} s): {r['agents']} real
`vigil run` agents (each its own state directory, `host_id = "generated"`, a watched file changed every
250 ms, a heartbeat every 5 s) and a load generator of {r['hosts']:,} hosts, each with its own spool and RELP
session (vigil's `output` and `spool` packages, one record every 30 s from a random phase), all on
127.0.0.1, send through one rsyslogd running docs/operations.md's relay snippet (imrelp, a disk queue
checkpointed at every message, omfwd) to a second rsyslogd standing for the SIEM. A third of the way in
the relay is killed with SIGKILL and started again {r['outage_seconds']} s later.

| | |
|---|---|
| records sent | {r['records']:,} ({r['agent_records']:,} by the agents, {r['load_records']:,} by the hosts) |
| received by the SIEM | all {r['records']:,} (host.id, event.sequence) pairs, in {r['lines']:,} lines: {r['duplicates']} duplicate(s) |
| relay throughput, steady | {r['steady_records_per_second']:.0f} records/s (the offered load) |
| relay throughput, draining the backlog | {r['drain_records_per_second']:.0f} records/s ({r['drain_seconds']:.1f} s after the restart); peak {r['peak_records_per_second']} in one second |
| spool depth during the {r['outage_seconds']} s outage | {r['max_spool_depth_hosts']:,} records over the hosts' spools (the largest {r['max_host_spool_bytes']:,} bytes); at most {r['max_spool_depth_agent']} in one agent's |
| hosts' records written to a session the kill had closed, sent again | {r['retried_hosts']:,} (of {r['delivered_hosts']:,} delivered) |

The steady row is the offered load; the relay's capacity shows in the backlog's drain, bounded by its
disk queue's checkpoint per message ([operations.md](operations.md#relp-to-an-rsyslog-relay)).
""")
