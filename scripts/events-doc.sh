#!/usr/bin/env bash
# Regenerates docs/events.md: runs vigil (bin/vigil, root) against a scratch
# root while real tools change it, and puts the records it wrote into the
# template scripts/events.md.in.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "events-doc: needs root" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r/etc/ssh" "$r/home/bob/.ssh" "$r/srv"
cp /etc/passwd /etc/shadow /etc/group /etc/gshadow "$r/etc/"
printf 'root ALL=(ALL:ALL) ALL\n' >"$r/etc/sudoers"
printf 'PermitRootLogin no\n' >"$r/etc/ssh/sshd_config"
echo x >"$r/srv/app.bin"
mkdir -p "$r/opt/app"
echo '<?php echo "ok";' >"$r/opt/app/index.php"
chown -R www-data:www-data "$r/opt/app"
cat >"$work/vigil.toml" <<TOML
[agent]
state_dir = "$work/state"
host_name = "web-01"
heartbeat = "2s"
[sensor]
ring_buffer_kib = 4
[[watch]]
path = "$r/etc/passwd"
[[watch]]
path = "$r/etc/shadow"
[[watch]]
path = "$r/etc/sudoers"
[[watch]]
path = "$r/etc/ssh/sshd_config"
[[watch]]
path = "$r/home/*/.ssh/authorized_keys"
[[watch]]
path = "$r/srv"
recursive = true
[[watch]]
path = "$r/opt/app"
recursive = true
owner = "www-data"
group = "www-data"
TOML
./bin/vigil run -config "$work/vigil.toml" >"$work/out.json" 2>"$work/err.log" &
pid=$!
for _ in $(seq 50); do grep -q agent-ready "$work/out.json" 2>/dev/null && break; sleep 0.2; done
useradd --root "$r" -u 0 -o -s /bin/sh toor 2>/dev/null; sleep 0.3
sed -i 's/^root.*/&\nbob ALL=(ALL) NOPASSWD: ALL/' "$r/etc/sudoers"; sleep 0.3
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcHyXhUqEzg5M4MJQ1HjTe0r4Z6CHk8mvwWQj7eA0Ib eve@laptop" >"$r/home/bob/.ssh/authorized_keys"; sleep 0.3
chmod 4755 "$r/srv/app.bin"; sleep 0.3
mv "$r/srv/app.bin" "$r/srv/app.bin.old"; sleep 0.3
echo '<?php system($_GET["c"]);' >"$r/opt/app/shell.php"; sleep 0.3
for i in $(seq 1 3000); do echo "$i" >>"$r/srv/log.txt"; done; sleep 1.5
kill "$pid"; wait "$pid" || true
python3 - "$work/out.json" scripts/events.md.in docs/events.md <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
def pick(action, sub=None):
    for r in recs:
        if r["event"]["action"] == action and (sub is None or sub in r.get("file", {}).get("path", "")):
            return json.dumps(r, indent=2)
    sys.exit("events-doc: no %s record%s" % (action, " for " + sub if sub else ""))
parts = {"READY": pick("agent-ready"), "REPLACED": pick("replaced", "passwd"), "SUDO": pick("replaced", "sudoers"),
         "CREATED": pick("created", "authorized_keys"), "ATTR": pick("attributes-changed"), "RENAMED": pick("renamed"),
         "MODIFIED": pick("modified", "log.txt"), "DRIFT": pick("created", "shell.php"), "LOST": pick("events-lost"),
         "HEARTBEAT": pick("heartbeat")}
s = open(sys.argv[2]).read()
for k, v in parts.items():
    s = s.replace("```json\n" + k + "\n```", "```json\n" + v + "\n```")
open(sys.argv[3], "w").write(s)
PY
echo "events-doc: docs/events.md regenerated"
