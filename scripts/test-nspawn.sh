#!/usr/bin/env bash
# TestContainerNspawn (pkg/agent) where systemd-nspawn can run: a guest with systemd as PID 1
# (scripts/systemd-guest.sh, with systemd-container added to its root) booted on a matrix
# kernel. systemd-nspawn has systemd-machined put the container in
# machine.slice/machine-<name>.scope; without systemd as PID 1 (this project's development host,
# the busybox matrix guests) it runs the container in its caller's cgroup, and no cgroup path
# names it. The test binary runs with VIGIL_TEST_NSPAWN=1, which TestContainerNspawn needs; the
# busybox-named cgroup cases (TestContainerCgroup) run beside it.
#
#   scripts/test-nspawn.sh            (root; NSPAWN_KERNEL=6.1, NSPAWN_OUT=/tmp/vigil-test-nspawn)
#
# Exit 0 when the guest's test binary passed with TestContainerNspawn run, not skipped.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
K=${NSPAWN_KERNEL:-6.1}
OUT=${NSPAWN_OUT:-/tmp/vigil-test-nspawn}
export SYSTEMD_GUEST_PACKAGES=systemd-sysv,udev,dbus,logrotate,systemd-container
export SYSTEMD_GUEST_TIMEOUT=${SYSTEMD_GUEST_TIMEOUT:-900}
rm -rf "$OUT"
mkdir -p "$OUT"
CGO_ENABLED=0 "$GO" test -c -tags privileged -o "$OUT/agent.test" ./pkg/agent
busybox=$(command -v busybox) || { echo "test-nspawn: busybox (Debian busybox-static) missing" >&2; exit 1; }
ov=$OUT/overlay
install -d -m 0755 "$ov/etc" "$ov/etc/systemd" "$ov/etc/systemd/system" \
	"$ov/etc/systemd/system/multi-user.target.wants" "$ov/usr" "$ov/usr/local" "$ov/usr/local/bin"
install -d -m 0700 "$ov/root" "$ov/root/nspawn"
install -m 0755 "$busybox" "$ov/usr/local/bin/busybox"
install -m 0755 "$OUT/agent.test" "$ov/root/nspawn/agent.test"
cat >"$ov/root/nspawn/run.sh" <<'EOF'
#!/bin/sh
cd /root/nspawn
VIGIL_TEST_NSPAWN=1 ./agent.test -test.v -test.count=1 -test.timeout=600s \
	-test.run 'TestContainerNspawn|TestContainerCgroup' >/dev/ttyS1 2>&1
echo "NSPAWN EXIT $?" >/dev/ttyS1
systemctl poweroff --force --force
EOF
chmod 0755 "$ov/root/nspawn/run.sh"
cat >"$ov/etc/systemd/system/vigil-nspawn-test.service" <<'EOF'
[Unit]
Description=vigil TestContainerNspawn (scripts/test-nspawn.sh)
After=dbus.service systemd-journald.service systemd-machined.service

[Service]
Type=oneshot
ExecStart=/root/nspawn/run.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
ln -s ../vigil-nspawn-test.service "$ov/etc/systemd/system/multi-user.target.wants/vigil-nspawn-test.service"
grc=0
scripts/systemd-guest.sh boot "$K" "$ov" "$OUT/guest" || grc=$?
res=$OUT/guest/results.log
tr -d '\r' <"$res" | grep -E '^(=== RUN|--- |    --- |\s+container_test.go|NSPAWN EXIT|ok|FAIL|PASS)' || true
echo "logs: $OUT/guest/{console.log,results.log} (qemu exit $grc)"
tr -d '\r' <"$res" | grep -q '^--- PASS: TestContainerNspawn' && tr -d '\r' <"$res" | grep -q '^NSPAWN EXIT 0$'
