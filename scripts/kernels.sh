#!/usr/bin/env bash
# Real Debian kernels for vigil's test matrix: fetch, cache, and extract BTF.
#
#   scripts/kernels.sh list                    the matrix, "major.minor suite,suite..." per line
#   scripts/kernels.sh fetch [--refresh] [K..] download + cache the kernels (default: all); a
#                                              line no suite serves any more prints RETIRED
#   scripts/kernels.sh path K                  cache directory of kernel K (fetches if needed);
#                                              exit status 3 when K is retired
#   scripts/kernels.sh forward                 the forward-compatibility kernel: the newest
#                                              major.minor that a suite of the matrix's
#                                              "@forward" directive serves, when it is newer
#                                              than every matrix line; fetched, its name
#                                              printed (nothing when there is none)
#   scripts/kernels.sh vmlinux K               path of K's raw vmlinux ELF (extracted, cached)
#   scripts/kernels.sh btf K|host              C header of K's BTF on stdout (vmlinux.h)
#
# K is a matrix "major.minor" (e.g. 6.1) or the forward kernel's. Each matrix line names
# the Debian suites that may serve its major.minor (bpf/matrix, 4th column). Kernels come
# from Debian's own archive: every suite's package list is read at run time and the newest
# linux-image-<K>.*-amd64 image package any of them serves is used (the suite's
# linux-image-amd64 may have moved on to a newer major.minor; the older images it still
# lists are found by name). The image package's layout says what to download (see
# image_packages: the "-unsigned" image before 7.x; linux-binary + linux-modules +
# linux-base from 7.x). apt runs with a private state (the machine's own package lists
# and caches are not touched). The mirror is the one the machine's apt sources already
# use (override: VIGIL_DEBIAN_MIRROR). VIGIL_MATRIX=<file> reads another matrix file.
#
# Cache: ${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/kernels/K/
#   vmlinuz  release  version  package  suite  config  modules/  [vmlinux]  [forward]
# A complete cache entry is reused without network (so a cached kernel is still booted
# after its suites dropped it, until --refresh); --refresh re-resolves the suites and
# re-downloads only if the Debian version changed.
set -Eeuo pipefail
# say where an unexpected failure stopped the script (not for subshells or SIGPIPE)
# shellcheck disable=SC2154 # _erc is set by the trap itself
trap '_erc=$?; ((BASH_SUBSHELL || _erc == 141)) || echo "kernels.sh: line $LINENO: \"$BASH_COMMAND\" failed ($_erc)" >&2' ERR

# The matrix: every bpf/matrix line that names Debian suites, as "major.minor:suite,suite".
MATRIX_FILE=${VIGIL_MATRIX:-$(dirname "$0")/../bpf/matrix}
[[ -r "$MATRIX_FILE" ]] || { echo "kernels.sh: cannot read $MATRIX_FILE" >&2; exit 1; }
MATRIX=$(awk '!/^[[:space:]]*(#|@|$)/ && $4 != "-" {printf "%s:%s ", $1, $4}' "$MATRIX_FILE")
[[ -n "$MATRIX" ]] || { echo "kernels.sh: no kernels in $MATRIX_FILE" >&2; exit 1; }
# The newest major.minor of any object line (booted or not): the forward probe looks above it.
NEWEST_LINE=$(awk '!/^[[:space:]]*(#|@|$)/ && $1 ~ /^[0-9]+\.[0-9]+$/ {print $1}' "$MATRIX_FILE" | sort -V | tail -n1)
# The suites the forward-compatibility probe reads: "@forward suite,suite" (none: no probe).
FORWARD_SUITES=$(awk '$1 == "@forward" { print $2; exit }' "$MATRIX_FILE")

CACHE_ROOT=${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}
KCACHE=$CACHE_ROOT/kernels
APTROOT=$CACHE_ROOT/apt
KEYRING=${VIGIL_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

die() {
	echo "kernels.sh: $*" >&2
	exit 1
}
note() { echo "kernels.sh: $*" >&2; }

usage() {
	sed -n '2,/^set -Eeuo/p' "$0" | sed -e '/^set -Eeuo/d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

matrix_suite() { # K -> suite
	local e
	for e in $MATRIX; do
		[[ "${e%%:*}" == "$1" ]] && {
			echo "${e#*:}"
			return 0
		}
	done
	return 1
}

matrix_kernels() {
	local e
	for e in $MATRIX; do echo "${e%%:*}"; done
}

check_kernel() {
	matrix_suite "$1" >/dev/null || is_forward "$1" ||
		die "unknown kernel '$1' (matrix: $(matrix_kernels | paste -sd' '))"
}

# A forward kernel is not in the matrix: its cache entry says what it is.
is_forward() { [[ -f "$KCACHE/$1/forward" ]] && kernel_complete "$KCACHE/$1"; }

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || die "missing command '$c' (run scripts/deps.sh)"
	done
}

# The Debian archive URI from the machine's own apt sources: the first enabled "deb"
# source whose suites include a plain Debian codename (not -security/-updates).
debian_mirror() {
	if [[ -n "${VIGIL_DEBIAN_MIRROR:-}" ]]; then
		echo "$VIGIL_DEBIAN_MIRROR"
		return
	fi
	local codes='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$'
	local f uri=""
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		uri=$(awk -v codes="$codes" '
			BEGIN { RS = ""; FS = "\n" }
			{
				types = ""; uris = ""; suites = ""; enabled = "yes"
				for (i = 1; i <= NF; i++) {
					line = $i
					if (line ~ /^#/) continue
					k = tolower(line); sub(/:.*/, "", k)
					v = line; sub(/^[^:]*:[ \t]*/, "", v)
					if (k == "types") types = v
					else if (k == "uris") uris = v
					else if (k == "suites") suites = v
					else if (k == "enabled") enabled = tolower(v)
				}
				if (enabled == "no" || (" " types " ") !~ / deb /) next
				n = split(suites, s, /[ \t]+/)
				for (j = 1; j <= n; j++) if (s[j] ~ codes) { split(uris, u, /[ \t]+/); print u[1]; exit }
			}' "$f")
		[[ -n "$uri" ]] && break
	done
	if [[ -z "$uri" ]]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[[ -r "$f" ]] || continue
			uri=$(awk -v codes="$codes" '
				$1 == "deb" {
					i = 2
					if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
					if ($(i + 1) ~ codes) { print $i; exit }
				}' "$f")
			[[ -n "$uri" ]] && break
		done
	fi
	shopt -u nullglob
	[[ -n "$uri" ]] || die "no Debian archive found in /etc/apt/sources.list{,.d/*}; set VIGIL_DEBIAN_MIRROR"
	echo "${uri%/}"
}

# Private apt state for one suite: lists, cache, sources and status under $APTROOT/<suite>.
APT_OPTS=()
apt_setup() { # suite
	local suite=$1 d=$APTROOT/$1 signed=""
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	: >"$d/status"
	[[ -r "$KEYRING" ]] && signed="signed-by=$KEYRING "
	echo "deb [${signed}target=Packages] $(debian_mirror) $suite main" >"$d/sources.list"
	APT_OPTS=(
		-o "Dir::State=$d" -o "Dir::State::Lists=$d/lists" -o "Dir::State::status=$d/status"
		-o "Dir::Cache=$d/cache" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
		-o "Dir::Etc::SourceList=$d/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Acquire::Languages=none" -o "APT::Get::List-Cleanup=true"
	)
	# as root apt drops to _apt for downloads; our private dirs are root's, so don't
	((EUID == 0)) && APT_OPTS+=(-o "APT::Sandbox::User=root")
	return 0
}

declare -A UPDATED=()
apt_update() { # suite (once per run)
	local log
	[[ -z "${UPDATED[$1]:-}" ]] || return 0
	UPDATED[$1]=1
	log=$(mktemp)
	if ! apt-get "${APT_OPTS[@]}" -q update >"$log" 2>&1 || grep -qE '^(W|E): ' "$log"; then
		cat "$log" >&2
		rm -f "$log"
		die "apt-get update of suite '$1' failed (private state $APTROOT/$1)"
	fi
	rm -f "$log"
}

kernel_complete() { # dir
	local d=$1 f
	for f in vmlinuz release version package modules/modules.dep complete; do
		[[ -s "$d/$f" ]] || return 1
	done
}

print_kernel() { # K dir
	printf '%-6s %-22s %-26s %s\n' "$1" "$(cat "$2/version")" "$(cat "$2/release")" "$2"
}

# The packages that hold image package $2 (version $3) of suite $1, by its layout:
#   old (up to 6.x): linux-image-<abi> holds boot/vmlinuz-<abi> and the modules; its
#     "-unsigned" twin, when the suite has it, is the same kernel without a signature
#   new (7.x): linux-image-<abi> is a metapackage that depends on linux-binary-<abi>
#     (usr/lib/modules/<abi>/vmlinuz), linux-modules-<abi> (the modules) and
#     linux-base-<abi> (config, modules.builtin, modules.order beside the modules)
# Prints "layout pkg..." on one line.
image_packages() { # suite imgpkg version
	local suite=$1 pkg=$2 ver=$3 dep abi bin mods base
	dep=$(apt-cache "${APT_OPTS[@]}" show "$pkg=$ver" 2>/dev/null |
		awk -F': ' '$1 == "Depends" && !d { d = $2 } END { print d }')
	abi=${pkg#linux-image-}
	abi=${abi%-unsigned}
	bin=$(tr ',|' '\n\n' <<<"$dep" | sed -e 's/^ *//' -e 's/ .*//' | grep -m1 -x "linux-binary-$abi" || true)
	if [[ -n "$bin" ]]; then
		mods=$(tr ',|' '\n\n' <<<"$dep" | sed -e 's/^ *//' -e 's/ .*//' | grep -m1 -x "linux-modules-$abi" || true)
		[[ -n "$mods" ]] || die "$suite: $pkg $ver depends on $bin but on no linux-modules-$abi (Depends: $dep)"
		base=$(tr ',|' '\n\n' <<<"$dep" | sed -e 's/^ *//' -e 's/ .*//' | grep -m1 -x "linux-base-$abi" || true)
		echo "split $bin $mods${base:+ $base}"
	elif apt-cache "${APT_OPTS[@]}" show "$pkg-unsigned=$ver" >/dev/null 2>&1; then
		echo "single $pkg-unsigned"
	else
		note "$suite: $pkg-unsigned $ver not found, using $pkg"
		echo "single $pkg"
	fi
}

# What a set of extracted packages holds, for an error that says what was found.
describe_tree() { # root
	local root=$1
	echo "  files (top two levels):"
	(cd "$root" && find . -mindepth 1 -maxdepth 2 | sed 's|^\./|    |' | LC_ALL=C sort | head -n 30)
	echo "  kernel-like files:"
	(cd "$root" && find . \( -name 'vmlinu*' -o -name 'bzImage*' -o -name 'config-*' -o -name modules.order \) |
		sed 's|^\./|    |' | head -n 20)
}

# Upstream major.minor of a Debian version: 6.12.117-1 -> 6.12, 7.3.4-1~bpo13+1 -> 7.3.
ver_mm() { sed -E 's/^([0-9]+)\.([0-9]+).*/\1.\2/' <<<"$1"; }

# The newest image package of major.minor K that any of the suites serves, as
# "suite package version"; nothing when none does. Besides the linux-image-amd64
# metapackage's current image, a suite's list keeps older images (backports keep
# every release they shipped): all linux-image-<K>.*-amd64 packages are candidates
# (not the -cloud, -rt, -dbg or -unsigned flavours).
resolve_kernel() { # K suites
	local k=$1 suites=$2 s p v best_v="" best=""
	for s in ${suites//,/ }; do
		apt_setup "$s"
		apt_update "$s"
		while read -r p; do
			[[ -n "$p" ]] || continue
			v=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$p" 2>/dev/null |
				awk -F': ' '$1 == "Version" { print $2; exit }')
			[[ -n "$v" && "$(ver_mm "$v")" == "$k" ]] || continue
			if [[ -z "$best_v" ]] || dpkg --compare-versions "$v" gt "$best_v"; then
				best_v=$v best="$s $p $v"
			fi
		done < <(apt-cache "${APT_OPTS[@]}" pkgnames "linux-image-$k." |
			grep -E "^linux-image-${k//./\\.}\.[0-9][^ ]*-amd64\$" | grep -vE -- '-(cloud|rt)-amd64$' || true)
	done
	[[ -z "$best" ]] || echo "$best"
}

# Set by fetch_one when no suite serves the kernel any more.
RETIRED=""

fetch_one() { # K suites refresh [forward]
	local k=$1 suites=$2 refresh=$3 suite dir ver pkg tmp root rel mods layout pkgs r
	RETIRED=""
	dir=$KCACHE/$k
	if ((!refresh)) && kernel_complete "$dir"; then
		print_kernel "$k" "$dir"
		return 0
	fi
	need apt-get apt-cache dpkg-deb dpkg
	r=$(resolve_kernel "$k" "$suites")
	if [[ -z "$r" ]]; then
		RETIRED="no suite of $suites serves linux-image-$k.*-amd64 any more"
		printf '%-6s %-22s %s\n' "$k" RETIRED "$RETIRED"
		return 0
	fi
	read -r suite pkg ver <<<"$r"
	apt_setup "$suite"
	read -r layout pkgs < <(image_packages "$suite" "$pkg" "$ver")
	if ((refresh)) && kernel_complete "$dir" && [[ "$(cat "$dir/version")" == "$ver" && "$(cat "$dir/package")" == "$pkgs" ]]; then
		print_kernel "$k" "$dir"
		return 0
	fi

	mkdir -p "$KCACHE"
	tmp=$(mktemp -d "$KCACHE/.fetch-$k.XXXXXX")
	# shellcheck disable=SC2064 # expand now
	trap "rm -rf '$tmp'" EXIT
	root=$tmp/root
	mkdir -p "$root" "$tmp/debs"
	local p
	for p in $pkgs; do
		note "$k: downloading $p $ver ($suite, $layout layout)"
		(cd "$tmp/debs" && apt-get "${APT_OPTS[@]}" -q download "$p=$ver" >"$tmp/download.log" 2>&1) || {
			cat "$tmp/download.log" >&2
			die "$k: download of $p=$ver failed"
		}
	done
	local deb
	for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
	mkdir -p "$tmp/out"
	# the kernel image: boot/vmlinuz-<rel> (old layout) or {usr/,}lib/modules/<rel>/vmlinuz (new)
	local vmlinuz="" cands=()
	shopt -s nullglob
	cands=("$root"/boot/vmlinuz-* "$root"/usr/lib/modules/*/vmlinuz "$root"/lib/modules/*/vmlinuz)
	shopt -u nullglob
	if ((${#cands[@]} != 1)); then
		{
			echo "kernels.sh: $k: expected one kernel image (boot/vmlinuz-* or {usr/,}lib/modules/*/vmlinuz) in $pkgs $ver ($suite), found ${#cands[@]}:"
			printf '    %s\n' "${cands[@]#"$root"/}"
			describe_tree "$root"
		} >&2
		die "$k: unrecognised kernel package layout in $suite ($pkg $ver -> $pkgs)"
	fi
	vmlinuz=${cands[0]}
	case $vmlinuz in
	*/boot/vmlinuz-*) rel=${vmlinuz##*/vmlinuz-} ;;
	*) rel=$(basename "$(dirname "$vmlinuz")") ;;
	esac
	mods=""
	for mods in "$root/lib/modules/$rel" "$root/usr/lib/modules/$rel"; do
		[[ -d "$mods/kernel" ]] && break
	done
	if [[ ! -d "$mods/kernel" ]]; then
		{
			echo "kernels.sh: $k: found the image ${vmlinuz#"$root"/} but no modules tree {usr/,}lib/modules/$rel/kernel in $pkgs:"
			describe_tree "$root"
		} >&2
		die "$k: unrecognised kernel package layout in $suite ($pkg $ver -> $pkgs)"
	fi
	mv "$vmlinuz" "$tmp/out/vmlinuz"
	# the kernel's config: boot/config-<rel> (old layout) or beside the modules (new)
	local c
	for c in "$root/boot/config-$rel" "$root/usr/lib/modules/$rel/config" "$root/lib/modules/$rel/config"; do
		if [[ -f "$c" ]]; then
			mv "$c" "$tmp/out/config"
			break
		fi
	done
	# modules.dep is made by the package's postinst: run depmod on the extracted tree
	need depmod
	mkdir -p "$tmp/dm/lib/modules"
	mv "$mods" "$tmp/dm/lib/modules/$rel"
	depmod -b "$tmp/dm" "$rel" || die "$k: depmod failed"
	[[ -s "$tmp/dm/lib/modules/$rel/modules.dep" ]] || die "$k: depmod made no modules.dep"
	mv "$tmp/dm/lib/modules/$rel" "$tmp/out/modules"
	echo "$rel" >"$tmp/out/release"
	echo "$ver" >"$tmp/out/version"
	echo "$pkgs" >"$tmp/out/package"
	echo "$suite" >"$tmp/out/suite"
	date -u +%Y-%m-%dT%H:%M:%SZ >"$tmp/out/complete"
	rm -rf "$dir.old"
	[[ -e "$dir" ]] && mv "$dir" "$dir.old"
	mv "$tmp/out" "$dir"
	rm -rf "$dir.old" "$tmp"
	trap - EXIT
	print_kernel "$k" "$dir"
}

cmd_fetch() {
	local refresh=0 ks=() k
	for k in "$@"; do
		case $k in
		--refresh) refresh=1 ;;
		-*) die "fetch: unknown flag $k" ;;
		*)
			check_kernel "$k"
			ks+=("$k")
			;;
		esac
	done
	((${#ks[@]})) || mapfile -t ks < <(matrix_kernels)
	mkdir -p "$KCACHE"
	exec 9>"$KCACHE/.lock"
	flock 9
	for k in "${ks[@]}"; do
		if ! matrix_suite "$k" >/dev/null; then # a forward kernel: cmd_forward refreshes it
			print_kernel "$k" "$KCACHE/$k"
		else
			fetch_one "$k" "$(matrix_suite "$k")" "$refresh"
		fi
	done
}

kernel_dir() { # K -> cache dir, fetching if needed; exit 3 if K is retired
	check_kernel "$1"
	local dir=$KCACHE/$1
	if ! kernel_complete "$dir"; then
		cmd_fetch "$1" >&2
		if [[ -n "$RETIRED" ]]; then
			echo "kernels.sh: $1: RETIRED: $RETIRED" >&2
			exit 3
		fi
	fi
	echo "$dir"
}

# The forward-compatibility kernel: each @forward suite's current linux-image-amd64;
# the newest major.minor among them, if newer than every matrix line, is fetched and
# named. Needs the network (the point is to see what Debian ships today).
cmd_forward() {
	local s v mm best=""
	[[ $# -eq 0 ]] || usage 2
	[[ -n "$FORWARD_SUITES" ]] || return 0
	need apt-get apt-cache dpkg-deb dpkg
	mkdir -p "$KCACHE"
	exec 9>"$KCACHE/.lock"
	flock 9
	for s in ${FORWARD_SUITES//,/ }; do
		apt_setup "$s"
		apt_update "$s"
		v=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions linux-image-amd64 2>/dev/null |
			awk -F': ' '$1 == "Version" { print $2; exit }')
		[[ -n "$v" ]] || continue
		mm=$(ver_mm "$v")
		[[ "$(printf '%s\n%s\n' "$NEWEST_LINE" "$mm" | sort -V | tail -n1)" != "$NEWEST_LINE" ]] || continue
		if [[ -z "$best" || "$(printf '%s\n%s\n' "$best" "$mm" | sort -V | tail -n1)" == "$mm" ]]; then
			best=$mm
		fi
	done
	if [[ -z "$best" ]]; then
		note "forward: no suite of $FORWARD_SUITES serves a kernel newer than $NEWEST_LINE"
		return 0
	fi
	# re-resolved every time (the newest image is the point); downloaded only if it moved
	fetch_one "$best" "$FORWARD_SUITES" 1 forward >&2
	[[ -z "$RETIRED" ]] || die "forward: $best: $RETIRED"
	echo "newer than every matrix line (@forward $FORWARD_SUITES)" >"$KCACHE/$best/forward"
	echo "$best"
}

# Extract the vmlinux ELF from a bzImage: find a compressed stream's magic and
# decompress from there (trailing data after the stream is ignored).
extract_vmlinux() { # vmlinuz out
	local in=$1 out=$2 magic tool off
	for magic in 'xz:\xFD7zXZ\x00' 'zstd:\x28\xB5\x2F\xFD' 'gzip:\x1F\x8B\x08'; do
		tool=${magic%%:*}
		need "$tool"
		while read -r off; do
			[[ -n "$off" ]] || continue
			case $tool in
			xz) tail -c +"$((off + 1))" "$in" | xz -dc --single-stream >"$out" 2>/dev/null || true ;;
			zstd) tail -c +"$((off + 1))" "$in" | zstd -dcq >"$out" 2>/dev/null || true ;;
			gzip) tail -c +"$((off + 1))" "$in" | gzip -dc >"$out" 2>/dev/null || true ;;
			esac
			if [[ "$(head -c4 "$out" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]]; then
				return 0
			fi
		done < <(LC_ALL=C grep -obUaP "${magic#*:}" "$in" | cut -d: -f1)
	done
	rm -f "$out"
	return 1
}

cmd_vmlinux() {
	[[ $# -eq 1 ]] || usage 2
	local dir
	dir=$(kernel_dir "$1")
	if [[ ! -s "$dir/vmlinux" ]]; then
		extract_vmlinux "$dir/vmlinuz" "$dir/vmlinux.tmp.$$" ||
			die "$1: no xz/zstd/gzip-compressed ELF found in $dir/vmlinuz"
		mv "$dir/vmlinux.tmp.$$" "$dir/vmlinux"
	fi
	echo "$dir/vmlinux"
}

cmd_btf() {
	[[ $# -eq 1 ]] || usage 2
	need bpftool
	local f
	if [[ "$1" == host ]]; then
		f=/sys/kernel/btf/vmlinux
		[[ -r "$f" ]] || die "host kernel has no $f"
	else
		f=$(cmd_vmlinux "$1")
	fi
	bpftool btf dump file "$f" format c
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	list)
		local e
		for e in $MATRIX; do echo "${e%%:*} ${e#*:}"; done
		;;
	fetch) cmd_fetch "$@" ;;
	forward) cmd_forward "$@" ;;
	path)
		[[ $# -eq 1 ]] || usage 2
		kernel_dir "$1"
		;;
	vmlinux) cmd_vmlinux "$@" ;;
	btf) cmd_btf "$@" ;;
	mirror) debian_mirror ;;
	-h | --help | help) usage 0 ;;
	*) usage 2 ;;
	esac
}

main "$@"
