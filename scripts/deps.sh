#!/usr/bin/env bash
# Install the host packages that vigil's build and real-kernel tests need
# (Debian 12 / apt). Idempotent: only missing packages are installed, and
# `apt-get update` runs once, only when something has to be installed.
#
#   scripts/deps.sh            install what is missing (needs root)
#   scripts/deps.sh --check    list missing packages, exit 1 if any
#
# Extra packages can be added with DEPS_EXTRA="pkg1 pkg2".
set -euo pipefail

PACKAGES=(
	# eBPF build
	clang llvm libbpf-dev bpftool
	# the tracepoint object's syscall numbers (asm/unistd_64.h)
	linux-libc-dev
	# real-kernel tests (scripts/kernels.sh, scripts/vmtest.sh)
	qemu-system-x86 busybox-static cpio xz-utils zstd gzip e2fsprogs kmod
	# private apt state for the kernel matrix
	apt gpgv debian-archive-keyring ca-certificates
	coreutils findutils util-linux grep
	# the inode reuse test's loop-mounted ext4 image (pkg/agent, host)
	mount
	# the attribute tests (pkg/attrs, pkg/agent, host): setfacl, setcap, chattr
	acl libcap2-bin e2fsprogs
	# issue 14's live table test (pkg/agent, host): setfattr; fallocate, mknod, mount are util-linux and coreutils
	attr
	# the shadow suite for the host-only agent tests (useradd --root ...)
	passwd
	# syslog and RELP output tests (pkg/output, cmd/vigil; privileged tier): a real receiver and relay
	rsyslog rsyslog-gnutls rsyslog-relp
	# the package test (scripts/test-package.sh): rpm in a scratch root, the systemd
	# guest's root, systemd-analyze verify
	rpm debootstrap systemd
	# issue 17's package database tests: a .deb built (dpkg-deb) and installed (dpkg --root)
	# in the test (pkg/agent), an rpm built (rpmbuild, in Debian's rpm) into a scratch
	# root (pkg/pkgmgr)
	dpkg rpm
	# metrics test (pkg/metrics): promtool check metrics
	prometheus
	# container identity (pkg/agent, host): a container run by runc from a local busybox bundle
	runc
)
# shellcheck disable=SC2206 # word splitting intended
[[ -n "${DEPS_EXTRA:-}" ]] && PACKAGES+=(${DEPS_EXTRA})

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ "$status" == ii* ]] || missing+=("$p")
done

if [[ "${1:-}" == "--check" ]]; then
	if ((${#missing[@]})); then
		echo "deps: missing: ${missing[*]}"
		exit 1
	fi
	echo "deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

install_missing() {
sudo=()
if ((EUID != 0)); then
	command -v sudo >/dev/null || {
		echo "deps: need root (or sudo) to install: ${missing[*]}" >&2
		exit 1
	}
	sudo=(sudo)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -q >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get update failed" >&2
	exit 1
fi
if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get install failed: ${missing[*]}" >&2
	exit 1
fi
echo "deps: installed ${#missing[@]} package(s): ${missing[*]}"
}

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PACKAGES[@]} packages present"
else
	install_missing
fi

# Go: the version go.mod names. Debian's golang-go is older, so it is not
# installed here; the Makefile also looks in /usr/local/go/bin.
want=$(awk '/^go /{print $2; exit}' "$(dirname "$0")/../go.mod")
gobin=$(command -v go || true)
[[ -z "$gobin" && -x /usr/local/go/bin/go ]] && gobin=/usr/local/go/bin/go
if [[ -z "$gobin" ]]; then
	echo "deps: Go $want is needed to build vigil from source and is not installed (see README.md)" >&2
	exit 1
fi
