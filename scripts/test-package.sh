#!/usr/bin/env bash
# The package test (make test-package, root): builds the deb and rpm, checks the rpm's files,
# modes, config flags and scriptlets in a scratch root, verifies the systemd unit, then proves
# the deb's unit and maintainer scripts in a Debian guest with systemd as PID 1
# (scripts/systemd-guest.sh): install, files and modes, service enabled and active, records,
# reload, logrotate, upgrade to a second, newer build with an edited configuration, remove,
# purge (scripts/package/guest-check.sh lists every check).
#
#   scripts/test-package.sh
#
# Environment: PKGTEST_KERNEL (matrix kernel of the guest, 6.1), PKGTEST_OUT (work and log
# directory, build/pkgtest), PKGTEST_CAPS=1 (run the capability experiment in the guest instead
# of the checks: docs/install.md), plus scripts/systemd-guest.sh's (SYSTEMD_GUEST_TIMEOUT: 900 here).
set -Eeuo pipefail
trap '_erc=$?; ((BASH_SUBSHELL)) || echo "test-package.sh: line $LINENO: \"$BASH_COMMAND\" failed ($_erc)" >&2' ERR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
K=${PKGTEST_KERNEL:-6.1}
OUT=${PKGTEST_OUT:-$ROOT/build/pkgtest}
PASS=0 FAILS=0

die() {
	echo "test-package.sh: $*" >&2
	exit 1
}
ok() {
	echo "ok   $*"
	PASS=$((PASS + 1))
}
fail() {
	echo "FAIL $*"
	FAILS=$((FAILS + 1))
}
check() { # name command...
	local name=$1 o
	shift
	if o=$("$@" 2>&1); then ok "$name"; else fail "$name: $(tr '\n' ' ' <<<"$o" | cut -c1-300)"; fi
}
want_stat() { # path "mode owner group type"
	local got
	got=$(stat -c '%a %U %G %F' "$1" 2>&1) || {
		echo "$1: $got"
		return 1
	}
	[[ "$got" == "$2" ]] || {
		echo "$1 is '$got', want '$2'"
		return 1
	}
}

((EUID == 0)) || die "needs root (rpm --root, the overlay mount for systemd-analyze, debootstrap)"
for c in rpm systemd-analyze dpkg-deb unshare; do
	command -v "$c" >/dev/null || die "missing command '$c' (run scripts/deps.sh)"
done
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT/dist"

# ---- build: the current version, and a newer one to upgrade to ---------------------------
V1=$(scripts/package.sh version)
V2=$V1.1
scripts/package.sh --version "$V1" --out "$OUT/dist" deb rpm >/dev/null
scripts/package.sh --version "$V2" --out "$OUT/dist" deb >/dev/null
DEB1=$OUT/dist/vigil_${V1}_amd64.deb
DEB2=$OUT/dist/vigil_${V2}_amd64.deb
RPM1=$OUT/dist/vigil-${V1}.x86_64.rpm
check "build: vigil_${V1}_amd64.deb, vigil-${V1}.x86_64.rpm and vigil_${V2}_amd64.deb exist" \
	test -s "$DEB1" -a -s "$DEB2" -a -s "$RPM1"
check "build: deb version $V1" test "$(dpkg-deb -f "$DEB1" Version)" = "$V1"
check "build: rpm version $V1" test "$(rpm -qp --qf '%{VERSION}' "$RPM1" 2>/dev/null)" = "$V1"
check "build: dpkg orders $V2 after $V1" dpkg --compare-versions "$V2" gt "$V1"
check "build: rpm orders $V2 after $V1" \
	test "$(rpm --eval "%{lua: print(rpm.vercmp('$V2', '$V1'))}")" = 1

# ---- the rpm in a scratch root -------------------------------------------------------------
RR=$OUT/rpmroot
mkdir -p "$RR"
rpm --root "$RR" --initdb 2>/dev/null
check "rpm: rpm --root -i --nodeps --noscripts" rpm --root "$RR" -i --nodeps --noscripts "$RPM1"
check "rpm: /usr/bin/vigil 0755 root" want_stat "$RR/usr/bin/vigil" "755 root root regular file"
check "rpm: /etc/vigil/vigil.toml 0640 root" want_stat "$RR/etc/vigil/vigil.toml" "640 root root regular file"
check "rpm: /etc/vigil/conf.d 0750 root" want_stat "$RR/etc/vigil/conf.d" "750 root root directory"
check "rpm: /var/lib/vigil 0700 root" want_stat "$RR/var/lib/vigil" "700 root root directory"
check "rpm: /var/log/vigil 0750 root" want_stat "$RR/var/log/vigil" "750 root root directory"
check "rpm: unit 0644 root" want_stat "$RR/usr/lib/systemd/system/vigil.service" "644 root root regular file"
check "rpm: logrotate snippet 0644 root" want_stat "$RR/etc/logrotate.d/vigil" "644 root root regular file"
check "rpm: the installed unit is the one in scripts/package" cmp "$RR/usr/lib/systemd/system/vigil.service" scripts/package/vigil.service
flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$RPM1" 2>/dev/null)
check "rpm: vigil.toml is %config(noreplace)" grep -qx '/etc/vigil/vigil.toml cn' <<<"$flags"
check "rpm: the logrotate snippet is %config(noreplace)" grep -qx '/etc/logrotate.d/vigil cn' <<<"$flags"
scripts=$(rpm -qp --scripts "$RPM1" 2>/dev/null)
for s in 'postinstall scriptlet' 'preuninstall scriptlet' 'postuninstall scriptlet' \
	'systemctl enable vigil.service' 'systemctl restart vigil.service' \
	'systemctl stop vigil.service' 'systemctl disable vigil.service' 'systemctl daemon-reload'; do
	check "rpm: scriptlets contain '$s'" grep -qF "$s" <<<"$scripts"
done
check "rpm: the packaged configuration writes /var/log/vigil/vigil.json" \
	grep -qx 'path = "/var/log/vigil/vigil.json"' "$RR/etc/vigil/vigil.toml"
check "rpm: the packaged configuration passes vigil check-config" \
	"$RR/usr/bin/vigil" check-config -config "$RR/etc/vigil/vigil.toml"

# ---- systemd-analyze verify on this host: /usr/bin/vigil laid over /usr/bin in a private mount namespace
verify() {
	local t=$OUT/verify
	mkdir -p "$t/up" "$t/work"
	cp "$RR/usr/bin/vigil" "$t/up/vigil"
	unshare -m --propagation private sh -c \
		'mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$1/up,workdir=$1/work" /usr/bin &&
		 systemd-analyze verify "$2"' sh "$t" "$RR/usr/lib/systemd/system/vigil.service"
}
check "unit: systemd-analyze verify on the host" verify
echo "     $(systemd-analyze security --offline=true "$RR/usr/lib/systemd/system/vigil.service" 2>/dev/null | grep -o 'Overall exposure level.*' || true)"

# ---- the deb in a systemd guest ----------------------------------------------------------
ov=$OUT/overlay
install -d -m 0755 "$ov/etc" "$ov/etc/systemd" "$ov/etc/systemd/system" \
	"$ov/etc/systemd/system/multi-user.target.wants"
install -d -m 0700 "$ov/root" "$ov/root/pkgtest"
install -m 0644 "$DEB1" "$DEB2" "$ov/root/pkgtest/"
install -m 0755 scripts/package/guest-check.sh "$ov/root/pkgtest/check.sh"
printf 'V1=%q\nV2=%q\nPKGTEST_CAPS=%q\n' "$V1" "$V2" "${PKGTEST_CAPS:-0}" >"$ov/root/pkgtest/env"
cat >"$ov/etc/systemd/system/vigil-pkgtest.service" <<'EOF'
[Unit]
Description=vigil package test (scripts/package/guest-check.sh)
After=dbus.service systemd-journald.service sys-kernel-tracing.mount

[Service]
Type=oneshot
ExecStart=/root/pkgtest/check.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
ln -s ../vigil-pkgtest.service "$ov/etc/systemd/system/multi-user.target.wants/vigil-pkgtest.service"

grc=0
SYSTEMD_GUEST_TIMEOUT=${SYSTEMD_GUEST_TIMEOUT:-900} scripts/systemd-guest.sh boot "$K" "$ov" "$OUT/guest" || grc=$?
res=$OUT/guest/results.log
tr -d '\r' <"$res" | sed -n 's/^PKGTEST \(INFO\|LOG\) /     /p'
while IFS= read -r line; do
	case $line in
	"PKGTEST ok "*) ok "guest: ${line#PKGTEST ok }" ;;
	"PKGTEST FAIL "*) fail "guest: ${line#PKGTEST FAIL }" ;;
	esac
done < <(tr -d '\r' <"$res")
if ! tr -d '\r' <"$res" | grep -q '^PKGTEST DONE'; then
	fail "guest: the check did not finish (qemu exit $grc); last console lines:"
	tail -n 30 "$OUT/guest/console.log" | tr -d '\r' | sed 's/^/     /'
fi
gok=$(tr -d '\r' <"$res" | grep -c '^PKGTEST ok ' || true)

echo "logs: $OUT/guest/{console.log,results.log}"
echo "test-package: $PASS passed, $FAILS failed ($gok guest checks on kernel $K) in $(($(date +%s) - start))s"
((FAILS == 0)) || exit 1
