#!/bin/bash
# vigil's package test, inside the systemd guest (scripts/test-package.sh puts it at
# /root/pkgtest/check.sh with the two packages and env, and runs it from a oneshot unit).
# Installs the first package, checks files, service and records, reloads, upgrades to the
# second package with a user edit in the configuration, removes and purges. Writes one line
# per check to ttyS1:
#   PKGTEST ok <check>        PKGTEST FAIL <check>: <why>        PKGTEST INFO <text>
#   PKGTEST DONE <failures>
# then powers the guest off.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
# shellcheck source=/dev/null
. /root/pkgtest/env # V1 V2: the two package versions
R=/dev/ttyS1
[ -c "$R" ] || R=/dev/console
stty -F "$R" raw -echo 2>/dev/null || true
OUT=/var/log/vigil/vigil.json
FAILS=0

ok() { echo "PKGTEST ok $*" >"$R"; }
fail() {
	echo "PKGTEST FAIL $*" >"$R"
	FAILS=$((FAILS + 1))
}
info() { echo "PKGTEST INFO $*" >"$R"; }
log() { echo "pkgtest: $*" >/dev/console; }
check() { # name command...: ok if the command succeeds
	local name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$name"; else fail "$name: $(tr '\n' ' ' </tmp/check.out | cut -c1-300)"; fi
}
finish() {
	echo "PKGTEST DONE $FAILS" >"$R"
	sync
	sleep 1
	systemctl poweroff --force --force
}

# mode owner group type of a path, as stat prints them
want_stat() { # path "mode owner group type"
	local got
	got=$(stat -c '%a %U %G %F' "$1" 2>&1) || {
		echo "$1: $got"
		return 1
	}
	[ "$got" = "$2" ] || {
		echo "$1 is '$got', want '$2'"
		return 1
	}
}

main_pid() { systemctl show -p MainPID --value vigil.service; }

# wait_for SECONDS command...: retry every half second
wait_for() {
	local n=$(($1 * 2))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.5
	done
}

# records in the output file after line $1 that contain every following string
records_after() { # line string...
	local from=$1 line s
	shift
	tail -n +"$((from + 1))" "$OUT" 2>/dev/null | while IFS= read -r line; do
		for s in "$@"; do
			case $line in *"$s"*) ;; *) continue 2 ;; esac
		done
		printf '%s\n' "$line"
	done | grep -q .
}
lines() { wc -l <"$OUT" 2>/dev/null || echo 0; }

journal_tail() {
	journalctl -u vigil.service --no-pager -n "${1:-25}" -o cat 2>&1 | cut -c1-400 | sed 's/^/PKGTEST LOG /' >"$R"
}

# PKGTEST_CAPS=1: instead of the checks, start vigil -self-test-only under the unit's
# sandbox with one setting changed at a time and say which BPF object it got, or why it
# failed (how docs/install.md's capability list was found).
caps_experiment() {
	local unit=/usr/lib/systemd/system/vigil.service props=() p v
	vigil default-config >/root/exp.toml
	systemctl disable --now vigil.service >/dev/null 2>&1
	# the unit's [Service] sandbox settings, as systemd-run properties
	while IFS= read -r p; do
		case $p in
		Exec* | Restart* | Type=* | TimeoutStopSec=* | CapabilityBoundingSet=* | "" | "#"*) ;;
		*) props+=(-p "$p") ;;
		esac
	done < <(sed -n '/^\[Service\]/,/^\[Install\]/p' "$unit" | grep -v '^\[')
	one() { # label extra-properties...
		local label=$1 t0=$SECONDS o
		shift
		o=$(systemd-run --quiet --pipe --wait --collect "$@" /usr/bin/vigil run -self-test-only -config /root/exp.toml 2>&1)
		info "caps[$label] rc=$? $((SECONDS - t0))s object=$(echo "$o" | grep '"action":"agent-ready"' | grep -o '"object":"[^"]*"' | head -n1) \
self-test=$(echo "$o" | grep '"action":"self-test"' | grep -o '"outcome":"[a-z]*"') \
refused=$(echo "$o" | grep -o '"refused":\[[^]]*\]' | head -n1 | cut -c1-600) \
errors=$(echo "$o" | grep -o '"error":"[^"]*"' | sort -u | tr '\n' ' ' | cut -c1-600)"
	}
	info "kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid) kernel.unprivileged_bpf_disabled=$(cat /proc/sys/kernel/unprivileged_bpf_disabled)"
	local caps base="CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH CAP_SETPCAP"
	one "no sandbox"
	for caps in "$base" "$base CAP_SYS_ADMIN" "CAP_BPF CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_SETPCAP" \
		"$base CAP_SYS_ADMIN CAP_SYS_RESOURCE" "CAP_PERFMON CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_SETPCAP" \
		"CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SETPCAP" "CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_DAC_READ_SEARCH"; do
		one "$caps" "${props[@]}" -p "CapabilityBoundingSet=$caps"
	done
	one "$base CAP_SYS_ADMIN LimitMEMLOCK=8M" "${props[@]}" -p "CapabilityBoundingSet=$base CAP_SYS_ADMIN" -p LimitMEMLOCK=8M
}

info "kernel $(uname -r); $(systemctl --version | head -n1)"
info "packages $V1 -> $V2"

# A user with a 0700 home and a 0600 authorized_keys, which root without
# CAP_DAC_READ_SEARCH could not read.
useradd -m -s /bin/bash alice
install -d -m 0700 -o alice -g alice /home/alice/.ssh
chmod 0700 /home/alice
su alice -c 'umask 077; echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1ZXN0a2V5b25lAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@one" >/home/alice/.ssh/authorized_keys'

# ---- install ----------------------------------------------------------------------------
log "dpkg -i vigil_$V1"
check "install: dpkg -i vigil_$V1 exits 0" dpkg -i "/root/pkgtest/vigil_${V1}_amd64.deb"
check "install: /usr/bin/vigil 0755 root" want_stat /usr/bin/vigil "755 root root regular file"
check "install: /etc/vigil/vigil.toml 0640 root" want_stat /etc/vigil/vigil.toml "640 root root regular file"
check "install: /etc/vigil/conf.d 0750 root" want_stat /etc/vigil/conf.d "750 root root directory"
check "install: /var/lib/vigil 0700 root" want_stat /var/lib/vigil "700 root root directory"
check "install: /var/log/vigil 0750 root" want_stat /var/log/vigil "750 root root directory"
check "install: unit 0644 root" want_stat /usr/lib/systemd/system/vigil.service "644 root root regular file"
check "install: logrotate snippet 0644 root" want_stat /etc/logrotate.d/vigil "644 root root regular file"
check "install: the configuration and logrotate snippet are conffiles" \
	sh -c 'c=$(dpkg-query -W -f="\${Conffiles}" vigil); echo "$c" | grep -q " /etc/vigil/vigil.toml " && echo "$c" | grep -q " /etc/logrotate.d/vigil "'
check "install: systemd-analyze verify vigil.service" systemd-analyze verify vigil.service
check "install: vigil check-config accepts the packaged configuration" vigil check-config
check "install: service enabled" sh -c '[ "$(systemctl is-enabled vigil.service)" = enabled ]'
check "install: service active" wait_for 30 sh -c '[ "$(systemctl is-active vigil.service)" = active ]'
if wait_for 180 records_after 0 '"action":"agent-ready"'; then
	ok "install: agent-ready in $OUT"
	info "$SECONDS s: sensor $(grep -m1 '"action":"agent-ready"' "$OUT" | grep -o '"sensor":{.*' | cut -c1-900)"
else
	fail "install: no agent-ready record in $OUT within 180s"
	journal_tail 40
fi
check "install: $OUT is 0600 root" want_stat "$OUT" "600 root root regular file"
check "install: the host key is 0600 in /var/lib/vigil" want_stat /var/lib/vigil/host.key "600 root root regular file"

PID1=$(main_pid)
if [ -r "/proc/$PID1/status" ]; then
	info "service process: $(grep -E '^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp):' "/proc/$PID1/status" | tr -s '\t\n' '  ')"
	check "install: no new privileges" grep -qE '^NoNewPrivs:[[:space:]]+1' "/proc/$PID1/status"
fi

if [ "${PKGTEST_CAPS:-0}" = 1 ]; then
	caps_experiment
	finish
fi

# ---- records ----------------------------------------------------------------------------
n=$(lines)
useradd -M -s /usr/sbin/nologin bob
check "records: useradd bob is a record for /etc/passwd" \
	wait_for 30 records_after "$n" '"path":"/etc/passwd"' '"name":"bob"' '"name":"useradd"'

n=$(lines)
su alice -c 'echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd1ZXN0a2V5dHdvAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@two" >>/home/alice/.ssh/authorized_keys'
check "records: alice's append to her 0600 authorized_keys in her 0700 home is read (sha256)" \
	wait_for 30 records_after "$n" '"path":"/home/alice/.ssh/authorized_keys"' '"sha256":"'

if vigil help 2>&1 | grep -q '^ *vigil status'; then
	check "status: vigil status exits 0" vigil status
	info "vigil status: $(vigil status 2>&1 | tr '\n' ' ' | cut -c1-300)"
else
	info "vigil has no status command in this build"
fi

# ---- reload -----------------------------------------------------------------------------
PID1=$(main_pid)
check "reload: systemctl reload vigil exits 0" systemctl reload vigil.service
sleep 2
check "reload: still active" sh -c '[ "$(systemctl is-active vigil.service)" = active ]'
check "reload: same MainPID" sh -c "[ \"\$(systemctl show -p MainPID --value vigil.service)\" = $PID1 ]"
n=$(lines)
groupadd reloaded
check "reload: records continue (groupadd after reload)" \
	wait_for 30 records_after "$n" '"path":"/etc/group"' '"name":"reloaded"'

# ---- logrotate ---------------------------------------------------------------------------
check "logrotate: logrotate -f /etc/logrotate.d/vigil exits 0" logrotate -f /etc/logrotate.d/vigil
check "logrotate: the old records were moved to vigil.json.1" test -s "$OUT.1"
groupadd rotated
check "logrotate: records go to the new vigil.json" \
	wait_for 30 records_after 0 '"path":"/etc/group"' '"name":"rotated"'
check "logrotate: same MainPID" sh -c "[ \"\$(systemctl show -p MainPID --value vigil.service)\" = $PID1 ]"

# ---- upgrade ----------------------------------------------------------------------------
cat >>/etc/vigil/vigil.toml <<'EOF'

# pkgtest: an administrator's edit
[[watch]]
path = "/etc/hostname"
kind = "diff"
EOF
n=$(lines)
log "dpkg -i vigil_$V2"
check "upgrade: dpkg -i vigil_$V2 exits 0" dpkg -i "/root/pkgtest/vigil_${V2}_amd64.deb"
check "upgrade: dpkg says $V2 is installed" sh -c "[ \"\$(dpkg-query -W -f='\${Version}' vigil)\" = '$V2' ]"
check "upgrade: vigil version says $V2" sh -c "vigil version | grep -qF -- '$V2'"
check "upgrade: the administrator's edit to vigil.toml survived" grep -q '^# pkgtest: an administrator' /etc/vigil/vigil.toml
check "upgrade: service active" wait_for 30 sh -c '[ "$(systemctl is-active vigil.service)" = active ]'
PID2=$(main_pid)
check "upgrade: service restarted (MainPID $PID1 -> $PID2)" sh -c "[ '$PID2' != '$PID1' ] && [ '$PID2' != 0 ]"
check "upgrade: the old process wrote agent-stopped" wait_for 30 records_after "$n" '"action":"agent-stopped"'
if wait_for 180 records_after "$n" '"action":"agent-ready"'; then
	ok "upgrade: agent-ready after the restart"
else
	fail "upgrade: no agent-ready after the restart within 180s"
	journal_tail 40
fi
n=$(lines)
echo vigil-guest-renamed >/etc/hostname
check "upgrade: the edited configuration is in effect (a record for /etc/hostname)" \
	wait_for 30 records_after "$n" '"path":"/etc/hostname"'
check "upgrade: service enabled" sh -c '[ "$(systemctl is-enabled vigil.service)" = enabled ]'

# ---- remove -----------------------------------------------------------------------------
log "dpkg -r vigil"
check "remove: dpkg -r vigil exits 0" dpkg -r vigil
check "remove: service not active" sh -c '[ "$(systemctl is-active vigil.service)" != active ]'
check "remove: no vigil process left" sh -c '! grep -qx vigil /proc/[0-9]*/comm'
check "remove: the binary is gone" test ! -e /usr/bin/vigil
check "remove: the unit is gone" test ! -e /usr/lib/systemd/system/vigil.service
check "remove: the service is no longer wanted by multi-user.target" \
	test ! -e /etc/systemd/system/multi-user.target.wants/vigil.service
check "remove: the state is kept (/var/lib/vigil/host.key)" test -s /var/lib/vigil/host.key
check "remove: the records are kept ($OUT)" test -s "$OUT"
check "remove: the edited configuration is kept" grep -q '^# pkgtest: an administrator' /etc/vigil/vigil.toml

# ---- purge ------------------------------------------------------------------------------
mkdir -p /etc/vigil/conf.d
echo '# a drop-in the administrator wrote' >/etc/vigil/conf.d/50-local.toml
log "dpkg -P vigil"
check "purge: dpkg -P vigil exits 0" dpkg -P vigil
check "purge: the configuration is gone" test ! -e /etc/vigil/vigil.toml
check "purge: the logrotate snippet is gone" test ! -e /etc/logrotate.d/vigil
check "purge: the state is gone" test ! -e /var/lib/vigil
check "purge: the records are gone" test ! -e /var/log/vigil
check "purge: the administrator's drop-in is kept" test -s /etc/vigil/conf.d/50-local.toml
check "purge: dpkg no longer knows vigil" sh -c '! dpkg-query -W -f="\${Status}" vigil 2>/dev/null | grep -q installed'

((FAILS == 0)) || journal_tail 25
finish
