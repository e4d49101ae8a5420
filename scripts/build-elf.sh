#!/usr/bin/env bash
# Builds every line of bpf/matrix into OUTDIR (default elf/) with its
# manifest. Deterministic: the same sources and clang give the same bytes,
# whatever the checkout's path or the files' times.
#   scripts/build-elf.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-elf}
mkdir -p "$out"
CLANG=${CLANG:-clang}
STRIP=${LLVM_STRIP:-llvm-strip}
work=build/elf
rm -rf "$work"
mkdir -p "$work"

clang_version=$($CLANG --version | head -n1)
# Everything in bpf/ but the BTF headers: hashed into every object's source_sha256.
src_files=$(find bpf -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name matrix \) | LC_ALL=C sort)

entries=()
while read -r name hooks btf suites extra; do
	case "$name" in '' | '#'* | '@'*) continue ;; esac
	header=bpf/btf/vmlinux-$btf.h.xz
	[ -f "$header" ] || { echo "build-elf: $header missing (scripts/kernels.sh btf $btf | xz > $header)" >&2; exit 1; }
	inc=$work/$btf
	mkdir -p "$inc"
	[ -f "$inc/vmlinux.h" ] || xz -dc "$header" >"$inc/vmlinux.h"
	# The objects adapt to the kernel at load time: a line states no kernel facts.
	[ -z "$extra" ] || { echo "build-elf: $name: unexpected columns after the suites: $extra" >&2; exit 1; }
	btf_kernel=$(awk -v b="$btf" '$1 == b { $1 = ""; sub(/^ +/, ""); print; exit }' bpf/btf/SOURCES)
	[ -n "$btf_kernel" ] || { echo "build-elf: bpf/btf/SOURCES does not say where BTF $btf came from" >&2; exit 1; }
	# A line may build several hook families (comma-separated): the kprobe
	# object keeps the line's name, another family's is <family>-<name>.
	for family in ${hooks//,/ }; do
		defs=()
		oname=$name
		case "$family" in
		kprobe) src=bpf/kprobe.bpf.c ;;
		fentry) src=bpf/kprobe.bpf.c defs=(-DVG_FENTRY) oname=fentry-$name ;;
		lsm) src=bpf/kprobe.bpf.c defs=(-DVG_FENTRY -DVG_LSM) oname=lsm-$name ;;
		tracepoint) src=bpf/tracepoint.bpf.c ;;
		*) echo "build-elf: $name: unknown hook type $family" >&2; exit 1 ;;
		esac
		obj=vigil-$oname.o
		$CLANG -g -O2 -target bpf -D__TARGET_ARCH_x86 "${defs[@]}" -fms-extensions -Wall -Wno-microsoft-anon-tag -Werror \
			-ffile-prefix-map="$PWD"=. -I "$inc" -I bpf -idirafter /usr/include/x86_64-linux-gnu \
			-c "$src" -o "$work/$obj"
		$STRIP -g "$work/$obj" -o "$out/$obj"
		src_sha=$(cat $src_files "$header" | sha256sum | cut -d' ' -f1)
		obj_sha=$(sha256sum "$out/$obj" | cut -d' ' -f1)
		entries+=("    {\"name\": \"$oname\", \"file\": \"$obj\", \"hooks\": \"$family\", \"btf\": \"$btf\", \"btf_kernel\": \"$btf_kernel\", \"source_sha256\": \"$src_sha\", \"clang\": \"$clang_version\", \"sha256\": \"$obj_sha\"}")
		echo "build-elf: $out/$obj ($family, BTF $btf)"
	done
done <bpf/matrix

{
	echo '{'
	echo '  "objects": ['
	for i in "${!entries[@]}"; do
		sep=,
		[ "$i" -eq $((${#entries[@]} - 1)) ] && sep=
		echo "${entries[$i]}$sep"
	done
	echo '  ]'
	echo '}'
} >"$out/manifest.json"
