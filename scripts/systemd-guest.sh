#!/usr/bin/env bash
# A Debian guest with systemd as PID 1, booted under qemu from an initramfs, for tests that
# need a real service manager (the packages' unit and maintainer scripts: scripts/test-package.sh).
#
#   scripts/systemd-guest.sh base                     build (once) and print the cached root's cpio
#   scripts/systemd-guest.sh boot K OVERLAY OUTDIR    boot matrix kernel K with the root plus OVERLAY
#
# The root: `debootstrap --variant=minbase --include=$GUEST_PACKAGES bookworm` from the Debian
# mirror the machine's apt sources already use (scripts/kernels.sh mirror; override with
# VIGIL_DEBIAN_MIRROR), trimmed (no docs, man pages, locales, apt lists) and packed as a
# zstd-compressed newc cpio, cached as
#   ${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/systemd-guest/root-<key>.cpio.zst
# where <key> hashes the suite, the package list and this script's root recipe, so a change to
# either builds a new one. Building it needs root (debootstrap) and takes about a minute.
#
# boot: OVERLAY is a directory whose tree is laid over the root (files replace the root's,
# directories keep OVERLAY's modes, so create them 0755), e.g. a unit enabled in
# multi-user.target that runs a check. The kernel is scripts/kernels.sh's cached K; systemd
# starts as PID 1 from the initramfs (rdinit=/lib/systemd/systemd) and the root stays in RAM.
# The guest's first serial port (ttyS0, the console) goes to OUTDIR/console.log, the second
# (ttyS1, for results) to OUTDIR/results.log. The guest must power itself off; after
# SYSTEMD_GUEST_TIMEOUT seconds (300) qemu is killed and boot exits 124.
#
# Environment: SYSTEMD_GUEST_PACKAGES (debootstrap --include list; default
# systemd-sysv,udev,dbus,logrotate: another list is another cached root), SYSTEMD_GUEST_MEM (MiB, 2048), SYSTEMD_GUEST_KVM=1 (KVM instead of TCG),
# SYSTEMD_GUEST_APPEND (extra kernel command line).
set -Eeuo pipefail
trap '_erc=$?; ((BASH_SUBSHELL || _erc == 141)) || echo "systemd-guest.sh: line $LINENO: \"$BASH_COMMAND\" failed ($_erc)" >&2' ERR

HERE=$(cd "$(dirname "$0")" && pwd)
KERNELS=$HERE/kernels.sh
CACHE_ROOT=${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}
GCACHE=$CACHE_ROOT/systemd-guest
SUITE=bookworm
GUEST_PACKAGES=${SYSTEMD_GUEST_PACKAGES:-systemd-sysv,udev,dbus,logrotate}
# bump when the recipe in build_root changes
RECIPE=1

die() {
	echo "systemd-guest.sh: $*" >&2
	exit 1
}
note() { echo "systemd-guest.sh: $*" >&2; }

usage() {
	sed -n '2,/^set -Eeuo/p' "$0" | sed -e '/^set -Eeuo/d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || die "missing command '$c' (run scripts/deps.sh)"
	done
}

mkcpio() { # dir -> newc cpio on stdout, files owned by root
	(cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet)
}

base_path() {
	local key
	key=$(printf '%s %s %s' "$SUITE" "$GUEST_PACKAGES" "$RECIPE" | md5sum | cut -c1-12)
	echo "$GCACHE/root-$SUITE-$key.cpio.zst"
}

build_root() { # out
	local out=$1 mirror tmp root
	((EUID == 0)) || die "building the guest root needs root (debootstrap)"
	need debootstrap cpio zstd
	mirror=$("$KERNELS" mirror)
	mkdir -p "$GCACHE"
	tmp=$(mktemp -d "$GCACHE/.build.XXXXXX")
	root=$tmp/root
	mkdir "$root"
	# build in RAM: dpkg syncs every file it unpacks, which is slow on a busy disk
	local ram=0
	mount -t tmpfs -o size=3g,mode=0755 vigil-guest-root "$root" 2>/dev/null && ram=1
	# shellcheck disable=SC2064 # expand now
	trap "((! $ram)) || umount -l '$root'; rm -rf '$tmp'" EXIT
	note "debootstrap $SUITE ($GUEST_PACKAGES) from $mirror"
	mkdir -p "$GCACHE/debs"
	if ! debootstrap --variant=minbase --include="$GUEST_PACKAGES" --cache-dir="$GCACHE/debs" \
		"$SUITE" "$root" "$mirror" \
		>"$tmp/debootstrap.log" 2>&1; then
		tail -n 30 "$tmp/debootstrap.log" >&2
		die "debootstrap failed (log above)"
	fi
	# trim what a test never reads
	rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
	echo vigil-guest >"$root/etc/hostname"
	printf '127.0.0.1 localhost vigil-guest\n::1 localhost\n' >"$root/etc/hosts"
	: >"$root/etc/fstab"
	# an empty machine-id: systemd makes a fresh one at each boot
	: >"$root/etc/machine-id"
	# no login prompt on the console
	ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
	ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
	mkcpio "$root" | zstd -q -T0 -6 -c >"$tmp/root.cpio.zst"
	mv "$tmp/root.cpio.zst" "$out"
	((!ram)) || umount "$root"
	rm -rf "$tmp"
	trap - EXIT
	note "guest root: $out ($(du -h "$out" | cut -f1))"
}

cmd_base() {
	local out
	out=$(base_path)
	if [[ ! -s "$out" ]]; then
		mkdir -p "$GCACHE"
		exec 9>"$GCACHE/.lock"
		flock 9
		[[ -s "$out" ]] || build_root "$out"
	fi
	echo "$out"
}

cmd_boot() {
	[[ $# -eq 3 ]] || usage 2
	local k=$1 overlay=$2 odir=$3 kdir base initrd rc=0 start
	[[ -d "$overlay" ]] || die "overlay '$overlay' is not a directory"
	need qemu-system-x86_64 cpio zstd timeout
	kdir=$("$KERNELS" path "$k")
	grep -qx 'CONFIG_RD_ZSTD=y' "$kdir/config" 2>/dev/null ||
		die "kernel $k cannot unpack a zstd initramfs (CONFIG_RD_ZSTD)"
	base=$(cmd_base)
	mkdir -p "$odir"
	initrd=$(mktemp "$odir/.initrd.XXXXXX")
	{
		cat "$base"
		mkcpio "$overlay" | zstd -q -T0 -3 -c
	} >"$initrd"
	: >"$odir/results.log"
	local accel=(-accel tcg -cpu max)
	[[ "${SYSTEMD_GUEST_KVM:-0}" == 1 ]] && accel=(-accel kvm -cpu host)
	local append="console=ttyS0 rdinit=/lib/systemd/systemd panic=-1 quiet ${SYSTEMD_GUEST_APPEND:-}"
	note "$k: booting $(cat "$kdir/release") with systemd as PID 1"
	start=$(date +%s)
	timeout -k 5 "${SYSTEMD_GUEST_TIMEOUT:-300}" qemu-system-x86_64 "${accel[@]}" \
		-m "${SYSTEMD_GUEST_MEM:-2048}" -smp 2 -nographic -no-reboot -monitor none -nic none \
		-kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$append" \
		-serial "file:$odir/console.log" -serial "file:$odir/results.log" \
		</dev/null >"$odir/qemu.log" 2>&1 || rc=$?
	rm -f "$initrd"
	note "$k: guest ran $(($(date +%s) - start))s, qemu exit $rc"
	((rc == 137)) && rc=124
	exit "$rc"
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	base) cmd_base ;;
	boot) cmd_boot "$@" ;;
	-h | --help | help) usage 0 ;;
	*) usage 2 ;;
	esac
}

main "$@"
