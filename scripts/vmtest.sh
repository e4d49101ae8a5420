#!/usr/bin/env bash
# Run vigil's Go test binaries inside real Debian kernels under qemu.
#
#   scripts/vmtest.sh BINDIR [kernel ...]
#
# kernel: a matrix major.minor (default: every kernel of scripts/kernels.sh list, then the
# forward-compatibility kernel, if a suite of bpf/matrix's @forward directive serves one) or
# "forward" (only that one).
#
# BINDIR holds statically linked (CGO_ENABLED=0) files: Go test binaries named *.test and
# anything else they need (the vigil binary, fixtures...). All of BINDIR is copied to /vigil/
# in the guest, keeping its layout; each /vigil/*.test is run, in sorted order, as
#   cd /vigil && ./NAME.test -test.v -test.count=1 -test.timeout=T $VMTEST_ARGS
# with VIGIL_VM=1 in its environment, bpffs, tracefs, debugfs, securityfs and cgroup2
# mounted, and an ext4 scratch filesystem (virtio disk) mounted at /mnt/ext4.
#
# Runs: each kernel boots once per run type (VMTEST_RUNS, default all four):
#   auto        the suite with the loader's own choice (TestObjectChoice asserts the kernel's
#               own major.minor's BPF-LSM object where the kernel runs the BPF LSM by default
#               (Debian's CONFIG_LSM names bpf from 6.1), else its fentry object, or its kprobe
#               object on a kernel that preempts in kernel mode, 7.x: own_family); "kprobe"
#               and "fentry" are accepted as old names
#   tracepoint  the suite with the tracepoint object forced (VIGIL_TEST_HOOKS=tracepoint);
#               N/A on a kernel the object cannot load on (no bpf_loop helper before 5.17)
#   xload       cross-load: the kernel's own objects of the families the loader does not choose
#               there, and every older kprobe and fentry object of elf/manifest.json, in one
#               boot, forced in turn (VIGIL_TEST_OBJECT=<object>), running the core cases
#               XLOAD_TESTS below; the own chosen object's cell comes from the auto run
#   lsm         on a kernel whose default LSMs leave the BPF LSM out (5.10), a boot with
#               lsm=<CONFIG_LSM>,bpf: the core cases with the loader's own choice, its BPF-LSM
#               object (TestObjectChoice); N/A where the BPF LSM runs by default
# and the forward-compatibility kernel boots once, as the "forward" run, with the loader's
# own choice (VIGIL_VM_FORWARD=1: TestObjectChoice asserts the first candidate loaded).
# A matrix line that no suite serves any more is RETIRED: reported, not booted, not a
# failure.
#
# Environment:
#   VMTEST_ARGS          extra test flags, e.g. "-test.run TestRename" (shell words; evaluated
#                        by the guest's sh, so quote as in a shell). When it has -test.run or
#                        -test.skip, a binary that runs no test is tolerated (not a kernel that
#                        runs none).
#   VMTEST_RUNS          run types, any of "auto tracepoint xload lsm" (all)
#   VMTEST_FORWARD=0     no forward-compatibility run (on by default when no kernel is named)
#   VMTEST_TIMEOUT       seconds per run before qemu is killed and the run is HUNG (480; an
#                        xload run of more than four objects gets that per four objects)
#   VMTEST_TEST_TIMEOUT  -test.timeout of each binary (default: VMTEST_TIMEOUT-60 seconds)
#   VMTEST_JOBS          kernels run at once (1)
#   VMTEST_KVM=1         use KVM instead of TCG (hangs or aborts on some machines)
#   VMTEST_CPU           qemu -cpu model (max with TCG, host with KVM)
#   VMTEST_SMP           vCPUs (2)
#   VMTEST_TCG_THREAD    TCG threading: single (default) or multi (docs/testing.md, "vCPUs")
#   VMTEST_MEM           guest memory in MiB (1536)
#   VMTEST_APPEND        extra kernel command line (e.g. lsm=lockdown,capability,bpf)
#   VMTEST_MODULES       extra kernel modules to load (names, with their modules.dep deps)
#   VMTEST_DISK_MB       size of the ext4 disk (64)
#   VMTEST_OUT           logs: $VMTEST_OUT/<kernel>/{console.log,results.log} for the auto
#                        and forward runs, $VMTEST_OUT/<kernel>/{tracepoint,xload}/... for the
#                        others; the cross-load table in $VMTEST_OUT/crossload.tsv
#                        (default ${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}/vmtest)
#
# Result per run: PASS, FAIL (a test failed or a binary exited non-zero), NOTEST (no test
# ran), NOEXT4 (the ext4 disk did not mount), CRASH (the VM stopped before the end), HUNG
# (timeout); RETIRED and N/A rows are reported and do not fail. A skip whose message contains
# HOST-ONLY is counted as host-only, not skipped. Exit status is non-zero unless every run
# is PASS (a cross-load run is PASS when every object passed every core case).
set -Eeuo pipefail
# say where an unexpected failure stopped the script (not for subshells or SIGPIPE)
# shellcheck disable=SC2154 # _erc is set by the trap itself
trap '_erc=$?; ((BASH_SUBSHELL || _erc == 141)) || echo "vmtest.sh: line $LINENO: \"$BASH_COMMAND\" failed ($_erc)" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KERNELS=$HERE/kernels.sh
GUEST_INIT=$HERE/guest-init.sh
CACHE_ROOT=${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}
OUT=${VMTEST_OUT:-$CACHE_ROOT/vmtest}
TIMEOUT=${VMTEST_TIMEOUT:-480}
MEM=${VMTEST_MEM:-1536}
JOBS=${VMTEST_JOBS:-1}
DISK_MB=${VMTEST_DISK_MB:-64}
ARGS=${VMTEST_ARGS:-}
RUNS=${VMTEST_RUNS:-auto tracepoint xload lsm}
# the loader's own choice was once always the kprobe object, then the fentry object: the old
# names stay
RUNS=$(sed -E 's/\b(kprobe|fentry)\b/auto/g' <<<"$RUNS")
# The cross-load run's core cases (write, rename-over, unlink, chmod, create in a tree, and
# issue 14's operations: xattrs, ACLs, flags, mkdir, rmdir, symlink, mknod, fallocate, mounts;
# and TestFamiliesAgree: the forced object's line's fentry and kprobe objects give the same
# records), per test binary: "<binary> <-test.run regexp>". TestObjectChoice asserts the forced object.
XLOAD_TESTS='sensor ^(TestObjectChoice|TestFamiliesAgree|TestWriteRecord|TestRenameOverWatchedFile|TestUnlinkWatched|TestSetattrWatched|TestRecursiveCreateDeep|TestGrantOperations)$
agent ^(TestAtomicReplaceAddsUser|TestChmodChown|TestTreeCreateExclude)$'
MANIFEST=$HERE/../elf/manifest.json
# modules the guest needs for its disk; missing or built-in ones are skipped
# (and overlay: issue 14's live test mounts an overlay over a watched tree)
BASE_MODULES="virtio_pci virtio_blk crc32c_intel crc32c_generic ext4 overlay"
export PATH=$PATH:/usr/sbin:/sbin

die() {
	echo "vmtest.sh: $*" >&2
	exit 2
}
note() { echo "vmtest: $*" >&2; }

usage() {
	sed -n '2,/^set -Eeuo/p' "$0" | sed -e '/^set -Eeuo/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

[[ $# -ge 1 ]] || usage
[[ "$1" != -h && "$1" != --help ]] || usage
BINDIR=$1
shift
[[ -d "$BINDIR" ]] || die "BINDIR '$BINDIR' is not a directory"
BINDIR=$(cd "$BINDIR" && pwd)
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "VMTEST_TIMEOUT must be seconds"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "VMTEST_JOBS must be a positive number"
TEST_TIMEOUT=${VMTEST_TEST_TIMEOUT:-$((TIMEOUT > 120 ? TIMEOUT - 60 : TIMEOUT / 2))s}

for c in qemu-system-x86_64 cpio zstd gzip xz base64 timeout mkfs.ext4 busybox flock; do
	command -v "$c" >/dev/null || die "missing command '$c' (run scripts/deps.sh)"
done
BUSYBOX=$(command -v busybox)
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked: install busybox-static"
fi

for r in $RUNS; do
	[[ "$r" =~ ^(auto|tracepoint|xload|lsm)$ ]] || die "VMTEST_RUNS: unknown run type '$r'"
done
FORWARD=${VMTEST_FORWARD:-1}
if [[ $# -gt 0 ]]; then
	KS=()
	for k in "$@"; do
		if [[ "$k" == forward ]]; then FORWARD=2; else KS+=("$k"); fi
	done
	((FORWARD == 2)) || FORWARD=0
else
	mapfile -t KS < <("$KERNELS" list | awk '{ print $1 }')
fi

mapfile -t TESTS < <(cd "$BINDIR" && find . -maxdepth 1 -name '*.test' -type f | sed 's|^\./||' | LC_ALL=C sort)
((${#TESTS[@]})) || note "warning: no *.test in $BINDIR"
for t in "${TESTS[@]}"; do
	# a dynamically linked binary names its ELF interpreter near the start of the file
	if LC_ALL=C grep -aq 'ld-linux' < <(head -c 4096 "$BINDIR/$t"); then
		die "$BINDIR/$t is dynamically linked: build it with CGO_ENABLED=0"
	fi
done

((${#KS[@]} == 0)) || "$KERNELS" fetch "${KS[@]}" >&2
FWD=""
if ((FORWARD)); then
	FWD=$("$KERNELS" forward) || {
		note "warning: the forward-compatibility probe failed (network?): no forward run"
		FWD=""
	}
fi

mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# ---- initramfs ------------------------------------------------------------------------

# Compressor for a kernel's initramfs: zstd if its config says it can unpack it, else gzip.
compressor() { # kdir
	if grep -qx 'CONFIG_RD_ZSTD=y' "$1/config" 2>/dev/null; then echo zstd; else echo gzip; fi
}

compress() { # format
	case $1 in
	zstd) zstd -q -T0 -3 -c ;;
	gzip) gzip -c -6 ;;
	esac
}

mkcpio() { # dir -> newc cpio on stdout, files owned by root
	(cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet)
}

# The part shared by every kernel: busybox, /init, /etc, BINDIR at /vigil.
common_cpio() { # format -> path
	local f=$WORK/common.cpio.$1
	if [[ ! -s "$f" ]]; then
		local r=$WORK/common
		if [[ ! -d "$r" ]]; then
			mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,mnt/ext4,var/tmp,lib/modules,vigil}
			cp "$BUSYBOX" "$r/bin/busybox"
			local a
			while read -r a; do
				[[ -n "$a" && "$a" != bin/busybox && ! -e "$r/$a" ]] || continue
				ln -s /bin/busybox "$r/$a"
			done < <("$BUSYBOX" --list-full)
			[[ -e "$r/bin/sh" ]] || ln -s /bin/busybox "$r/bin/sh"
			install -m 0755 "$GUEST_INIT" "$r/init"
			printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
			printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$r/etc/group"
			printf '127.0.0.1 localhost vigil-vm\n::1 localhost\n' >"$r/etc/hosts"
			: >"$r/etc/fstab"
			chmod 1777 "$r/tmp" "$r/var/tmp"
			cp -rL "$BINDIR/." "$r/vigil/"
		fi
		mkcpio "$r" | compress "$1" >"$f.tmp"
		mv "$f.tmp" "$f"
	fi
	echo "$f"
}

# The kernel's own modules for the disk, decompressed, with a load-order list; cached in
# the kernel's cache directory. Prints the cached cpio's path; its .info file says
# which modules are loaded and which are built in.
modules_cpio() { # kdir format
	local kdir=$1 fmt=$2 rel key dir
	rel=$(cat "$kdir/release")
	key=$(echo "$BASE_MODULES ${VMTEST_MODULES:-} $fmt v1" | md5sum | cut -c1-12)
	dir=$kdir/vmtest
	if [[ -s "$dir/modules-$key.cpio" && -s "$dir/modules-$key.info" ]]; then
		echo "$dir/modules-$key.cpio"
		return
	fi
	mkdir -p "$dir"
	local mdir=$kdir/modules tree
	tree=$(mktemp -d "$dir/.tree.XXXXXX")
	local -A path=() deps=() builtin=() seen=()
	local line p n
	while IFS= read -r line; do
		p=${line%%:*}
		n=${p##*/}
		n=${n%%.ko*}
		n=${n//-/_}
		path[$n]=$p
		deps[$n]=${line#*:}
	done <"$mdir/modules.dep"
	if [[ -f "$mdir/modules.builtin" ]]; then
		while IFS= read -r p; do
			n=${p##*/}
			n=${n%%.ko*}
			builtin[${n//-/_}]=1
		done <"$mdir/modules.builtin"
	fi
	local order=() loaded=() built=() missing=()
	visit() {
		local m=${1//-/_} d dn
		[[ -z "${seen[$m]:-}" ]] || return 0
		seen[$m]=1
		if [[ -n "${builtin[$m]:-}" ]]; then
			built+=("$m")
			return 0
		fi
		if [[ -z "${path[$m]:-}" ]]; then
			missing+=("$m")
			return 0
		fi
		for d in ${deps[$m]}; do
			dn=${d##*/}
			visit "${dn%%.ko*}"
		done
		order+=("${path[$m]}")
		loaded+=("$m")
	}
	local m
	for m in $BASE_MODULES ${VMTEST_MODULES:-}; do visit "$m"; done
	local base=$tree/lib/modules/$rel out
	mkdir -p "$base"
	: >"$base/vigil.modules"
	for p in "${order[@]}"; do
		out=${p%.xz}
		out=${out%.zst}
		out=${out%.gz}
		mkdir -p "$base/$(dirname "$out")"
		case $p in
		*.xz) xz -dc "$mdir/$p" >"$base/$out" ;;
		*.zst) zstd -qdc "$mdir/$p" >"$base/$out" ;;
		*.gz) gzip -dc "$mdir/$p" >"$base/$out" ;;
		*) cp "$mdir/$p" "$base/$out" ;;
		esac
		echo "$out" >>"$base/vigil.modules"
	done
	{
		echo "loadable: ${loaded[*]:-none}"
		echo "built-in: ${built[*]:-none}"
		echo "missing: ${missing[*]:-none}"
	} >"$dir/modules-$key.info.tmp"
	mkcpio "$tree" | compress "$fmt" >"$dir/modules-$key.cpio.tmp"
	rm -rf "$tree"
	mv "$dir/modules-$key.cpio.tmp" "$dir/modules-$key.cpio"
	mv "$dir/modules-$key.info.tmp" "$dir/modules-$key.info"
	echo "$dir/modules-$key.cpio"
}

# ---- vCPUs ------------------------------------------------------------------------------

# qemu accelerator and vCPU count per run type: "accel smp" (docs/testing.md, "vCPUs").
# TCG runs single-threaded (thread=single: the vCPUs take turns on one host thread) with two
# vCPUs by default: see docs/testing.md for why. VMTEST_TCG_THREAD=multi, VMTEST_SMP=N override.
vcpus() { # type
	if [[ "${VMTEST_KVM:-0}" == 1 ]]; then
		echo "kvm ${VMTEST_SMP:-2}"
		return
	fi
	local thread=${VMTEST_TCG_THREAD:-single}
	[[ "$thread" =~ ^(single|multi)$ ]] || die "VMTEST_TCG_THREAD must be single or multi"
	echo "tcg,thread=$thread ${VMTEST_SMP:-2}"
}

# ---- results --------------------------------------------------------------------------

# Counts from a results log: "pass fail skip hostonly notest nresults badrc done ext4 release"
parse_results() { # results.log
	tr -d '\r' <"$1" | awk '
		function indent(s) { match(s, /^ */); return RLENGTH }
		function flush() { if (pending) { if (pendhost) host++; else skip++; pending = 0 } }
		BEGIN { pass = fail = skip = host = notest = nres = badrc = done = 0; ext4 = "none"; rel = "-" }
		/^VIGIL-VMTEST-KERNEL / { rel = $2; next }
		/^VIGIL-VMTEST-EXT4 ok/ { ext4 = "ok"; next }
		/^VIGIL-VMTEST-EXT4 FAIL/ { ext4 = "FAIL"; next }
		/^VIGIL-VMTEST-RESULT / { flush(); nres++; if ($3 != "0") badrc++; cur = ""; next }
		/^VIGIL-VMTEST-DONE/ { flush(); done = 1; next }
		/^VIGIL-VMTEST-/ { next }
		/testing: warning: no tests to run/ { notest++ }
		/^=== (RUN|CONT|NAME|PAUSE) / { flush(); cur = $3; next }
		/^ *--- (PASS|FAIL|SKIP): / {
			flush()
			ind = indent($0)
			s = $0; sub(/^ *--- /, "", s)
			kind = substr(s, 1, 4)
			name = s; sub(/^[A-Z]+: /, "", name); sub(/ \(.*$/, "", name)
			if (kind == "PASS") pass++
			else if (kind == "FAIL") fail++
			else { pending = 1; pendhost = (name in hostonly); pendind = ind }
			cur = ""
			next
		}
		{
			# a skip reason printed after "--- SKIP:" (non-streamed output), more indented
			if (pending) {
				if (indent($0) > pendind && $0 != "") { if ($0 ~ /HOST-ONLY/) pendhost = 1; next }
				flush()
			}
			# streamed (-test.v) log lines belong to the test named by the last === line
			if (cur != "" && $0 ~ /HOST-ONLY/) hostonly[cur] = 1
		}
		END { flush(); print pass, fail, skip, host, notest, nres, badrc, done, ext4, rel }'
}

# Counts per object of a cross-load results log: "object pass fail nresults badrc reason"
# lines (reason: the first "did not load/start" line, "-" if none).
parse_xload() { # results.log
	tr -d '\r' <"$1" | awk '
		function out() {
			if (obj != "") {
				r = reason; gsub(/[ \t]+/, " ", r); if (r == "") r = "-"
				print obj, p, f, n, b, substr(r, 1, 2000)
			}
		}
		/^VIGIL-VMTEST-OBJECT / { obj = $2; p = f = n = b = 0; reason = ""; next }
		/^VIGIL-VMTEST-OBJECT-END / { out(); obj = ""; next }
		obj == "" { next }
		/^VIGIL-VMTEST-RESULT / { n++; if ($3 != "0") b++; next }
		/^ *--- PASS: / { p++; next }
		/^ *--- FAIL: / { f++; next }
		reason == "" && /(sensor did not load|agent did not start|no BPF object fits)/ {
			reason = $0; sub(/^[ \t]*([a-z_]+\.go:[0-9]+: )?/, "", reason)
		}
		END { out() }'
}

# The kernel lines' objects of the manifest (kprobe and fentry families), as "name line
# family" lines, oldest line first, kprobe before fentry within a line.
line_objects() {
	awk -F'"' '/"name":/ {
		name = ""; hooks = ""
		for (i = 1; i < NF; i++) {
			if ($i == "name") name = $(i + 2)
			if ($i == "hooks") hooks = $(i + 2)
		}
		line = name; sub("^" hooks "-", "", line)
		if (hooks == "kprobe" || hooks == "fentry" || hooks == "lsm") print name, line, hooks
	}' "$MANIFEST" | sort -V -k2,2 -k3,3r
}

# The family the loader chooses on a kernel's own line (TestObjectChoice asserts it): kprobe on
# a kernel that preempts in kernel mode, as its configuration's preemption model says (7.x's
# PREEMPT_LAZY; docs/kernels.md), else fentry.
own_family() { # KDIR
	if grep -qE '^CONFIG_PREEMPT(_LAZY|_RT)?=y' "$1/config" 2>/dev/null; then
		echo kprobe
	elif [[ -z "$(lsm_off "$1")" ]]; then
		echo lsm
	else
		echo fentry
	fi
}

# Why a kernel does not run the BPF LSM at boot without lsm=, or nothing when it does: its
# default LSM list (CONFIG_LSM) names bpf (Debian's from 6.1) and it is built with it.
lsm_off() { # KDIR
	grep -q '^CONFIG_BPF_LSM=y' "$1/config" 2>/dev/null || {
		echo "built without CONFIG_BPF_LSM"
		return 0
	}
	grep -qE '^CONFIG_LSM=".*\bbpf\b' "$1/config" 2>/dev/null ||
		echo "CONFIG_LSM=\"$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "$1/config")\" leaves bpf out"
}

vless() { [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }

# Why the tracepoint object cannot load on a kernel, or nothing if it can: it calls
# bpf_loop, which the kernel's BTF names (enum bpf_func_id BPF_FUNC_loop) from 5.17.
tracepoint_na() { # K kdir
	local f=$2/vmtest/bpf_loop
	grep -q 'bpf_loop' "$HERE/../bpf/tracepoint.bpf.c" || return 0
	if [[ ! -s "$f" ]]; then
		mkdir -p "$2/vmtest"
		local n
		n=$("$KERNELS" btf "$1" | grep -c '\bBPF_FUNC_loop\b' || true)
		if ((n > 0)); then echo yes >"$f"; else echo no >"$f"; fi
	fi
	[[ "$(cat "$f")" == yes ]] || echo "no bpf_loop helper in this kernel (5.17+): the tracepoint object cannot load"
}

# ---- one run --------------------------------------------------------------------------

# Boots kernel K for one run type and writes its summary row to $WORK/row.K.type.
run_kernel() { # K type
	local k=$1 typ=$2 kdir rel fmt common mods initrd odir disk start secs rc=0 krc=0
	local row=$WORK/row.$k.$typ
	kdir=$("$KERNELS" path "$k" 2>"$WORK/path.$k.$typ") || krc=$?
	if ((krc == 3)); then
		printf '%-7s %-10s %-22s %-8s %s\n' "$k" "$typ" - RETIRED \
			"$(sed -n 's/.*RETIRED: //p' "$WORK/path.$k.$typ" | head -n1)" >"$row"
		return 0
	elif ((krc != 0)); then
		cat "$WORK/path.$k.$typ" >&2
		printf '%-7s %-10s %-22s %-8s\n' "$k" "$typ" - ERROR >"$row"
		return 0
	fi
	rel=$(cat "$kdir/release")
	case $typ in
	auto | forward) odir=$OUT/$k ;;
	*) odir=$OUT/$k/$typ ;;
	esac
	mkdir -p "$odir"
	rm -f "$odir/console.log" "$odir/summary" "$odir/crossload"
	: >"$odir/results.log"

	# loglevel=5 after quiet: warnings and oopses ("Oops: ..." is KERN_DEFAULT) reach console.log
	local append="console=ttyS0 quiet loglevel=5 panic=-1 vigil.timeout=$TEST_TIMEOUT" objs=() nbins=${#TESTS[@]}
	case $typ in
	auto | forward)
		[[ "$typ" == forward ]] && append+=" vigil.forward=1"
		;;
	tracepoint)
		local na
		na=$(tracepoint_na "$k" "$kdir")
		if [[ -n "$na" ]]; then
			printf '%-7s %-10s %-22s %-8s %s\n' "$k" "$typ" "$rel" N/A "$na" >"$row"
			cp "$row" "$odir/summary"
			return 0
		fi
		append+=" vigil.hooks=tracepoint"
		;;
	xload)
		# the own objects of the families the loader does not choose here (BPF-LSM where
		# the kernel runs the BPF LSM by default), and every older line's kprobe and fentry
		# objects (the own chosen object is the auto run's)
		local o line fam own
		own=$(own_family "$kdir")
		while read -r o line fam; do
			if [[ "$fam" == lsm ]]; then
				[[ "$line" == "$k" && "$own" != lsm && -z "$(lsm_off "$kdir")" ]] && objs+=("$o")
				continue
			fi
			if vless "$line" "$k" || [[ "$line" == "$k" && "$fam" != "$own" ]]; then objs+=("$o"); fi
		done < <(line_objects)
		if ((${#objs[@]} == 0)); then
			printf '%-7s %-10s %-22s %-8s %s\n' "$k" "$typ" "$rel" N/A "no kprobe or older object" >"$row"
			cp "$row" "$odir/summary"
			return 0
		fi
		append+=" vigil.objects=$(
			IFS=,
			echo "${objs[*]}"
		) vigil.tests=$(printf '%s' "$XLOAD_TESTS" | base64 -w0)"
		nbins=$(($(grep -c . <<<"$XLOAD_TESTS") * ${#objs[@]}))
		;;
	lsm)
		# A kernel whose default LSMs leave the BPF LSM out, booted with it added (lsm=):
		# the loader's own choice (its BPF-LSM object, asserted by TestObjectChoice) runs
		# the core cases. Elsewhere the auto and xload runs already have it.
		local off lsms
		off=$(lsm_off "$kdir")
		if [[ -z "$off" || "$off" == "built without"* ]]; then
			printf '%-7s %-10s %-22s %-8s %s\n' "$k" "$typ" "$rel" N/A \
				"${off:-the BPF LSM runs by default (CONFIG_LSM): the auto and xload runs use it}" >"$row"
			cp "$row" "$odir/summary"
			return 0
		fi
		lsms=$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "$kdir/config")
		append+=" lsm=${lsms:+$lsms,}bpf vigil.tests=$(printf '%s' "$XLOAD_TESTS" | base64 -w0)"
		nbins=$(grep -c . <<<"$XLOAD_TESTS")
		;;
	esac
	[[ -n "$ARGS" && "$typ" != xload && "$typ" != lsm ]] && append+=" vigil.args=$(printf '%s' "$ARGS" | base64 -w0)"
	[[ -n "${VMTEST_APPEND:-}" ]] && append+=" $VMTEST_APPEND"

	fmt=$(compressor "$kdir")
	common=$(common_cpio "$fmt")
	mods=$(modules_cpio "$kdir" "$fmt")
	initrd=$WORK/initrd.$k.$typ
	cat "$common" "$mods" >"$initrd"
	disk=$WORK/ext4.$k.$typ.img
	rm -f "$disk"
	truncate -s "${DISK_MB}M" "$disk"
	mkfs.ext4 -q -F -L vigil-test "$disk" >/dev/null

	local accel smp
	read -r accel smp < <(vcpus "$typ")
	[[ "$smp" =~ ^[1-9][0-9]*$ ]] || die "VMTEST_SMP must be a positive number"
	note "$k $typ: booting $rel with $accel -smp $smp${objs:+, objects ${objs[*]}} ($(sed -n 's/^loadable: /modules: /p' "${mods%.cpio}.info"); built-in: $(sed -n 's/^built-in: //p' "${mods%.cpio}.info"))"
	local cpu=(-cpu "${VMTEST_CPU:-max}")
	[[ "${VMTEST_KVM:-0}" == 1 ]] && cpu=(-cpu "${VMTEST_CPU:-host}")
	# a cross-load boot runs the core cases once per object: the budget is TIMEOUT per four
	# objects (the most one boot forced before the fentry family)
	local tmo=$TIMEOUT
	((${#objs[@]} <= 4)) || tmo=$((TIMEOUT * ${#objs[@]} / 4))
	start=$(date +%s)
	timeout -k 5 "$tmo" qemu-system-x86_64 -accel "$accel" "${cpu[@]}" -m "$MEM" -smp "$smp" \
		-nographic -no-reboot -monitor none -nic none \
		-kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$append" \
		-drive "file=$disk,if=virtio,format=raw,cache=unsafe" \
		-serial "file:$odir/console.log" -serial "file:$odir/results.log" \
		</dev/null >"$odir/qemu.log" 2>&1 || rc=$?
	secs=$(($(date +%s) - start))
	rm -f "$disk" "$initrd"

	local pass fail skip host notest nres badrc fin ext4 grel result
	read -r pass fail skip host notest nres badrc fin ext4 grel < <(parse_results "$odir/results.log")
	local selected=0
	[[ "$typ" == xload || "$typ" == lsm || " $ARGS " =~ [[:space:]]-?-test\.(run|skip)[=[:space:]] ]] && selected=1
	if ((rc == 124 || rc == 137)); then
		result=HUNG
	elif ((fin == 0)); then
		result=CRASH
	elif [[ "$ext4" != ok ]]; then
		result=NOEXT4
	elif ((fail > 0 || badrc > 0 || nres < nbins)) || [[ "$grel" != "$rel" ]]; then
		result=FAIL
	elif ((pass + fail == 0 || (notest > 0 && !selected))); then
		result=NOTEST
	else
		result=PASS
	fi
	[[ "$grel" == "$rel" || "$grel" == - ]] || note "$k: guest runs $grel, expected $rel"
	# the families the sensor tests loaded (their TestMain's "sensor: kernel ... object <name> (<family>)")
	local fams
	fams=$(tr -d '\r' <"$odir/results.log" | sed -n 's/^sensor: kernel .* object [^ ]* (\([a-z]*\)).*/\1/p' | sort -u | paste -sd, -)
	printf '%-7s %-10s %-22s %-8s %-7s %-7s %-8s %-10s %-7s %-7s %s\n' \
		"$k" "$typ" "$rel" "$result" "$pass" "$fail" "$skip" "$host" "$notest" "$secs" "${fams:--}" >"$row"
	cp "$row" "$odir/summary"
	if [[ "$typ" == xload ]]; then
		# one line per object: object kernel release PASS|FAIL reason
		local ob p f n b reason seen=" "
		while read -r ob p f n b reason; do
			seen+="$ob "
			if ((f == 0 && b == 0 && p > 0 && n == $(grep -c . <<<"$XLOAD_TESTS"))); then
				printf '%s\t%s\t%s\tPASS\t-\n' "$ob" "$k" "$rel"
			else
				# the loader lists every object's refusal: keep the forced object's own
				local own
				own=$(grep -o "\[$ob: [^]]*\]" <<<"$reason" | head -n1 || true)
				[[ -z "$own" ]] || reason="sensor did not load: $own"
				reason=${reason:0:240}
				[[ "$reason" != - ]] || reason="$f failed, $b binaries exited non-zero, $n of $(grep -c . <<<"$XLOAD_TESTS") reported"
				printf '%s\t%s\t%s\tFAIL\t%s\n' "$ob" "$k" "$rel" "$reason"
			fi
		done < <(parse_xload "$odir/results.log") >"$odir/crossload"
		for ob in "${objs[@]}"; do
			[[ "$seen" == *" $ob "* ]] || printf '%s\t%s\t%s\tFAIL\t%s\n' "$ob" "$k" "$rel" "no result ($result)" >>"$odir/crossload"
		done
	fi

	if [[ "$result" != PASS ]]; then
		{
			echo "==== $k $typ ($rel): $result; qemu exit $rc; $nres/$nbins binaries reported, $badrc non-zero"
			echo "---- last 60 lines of $odir/results.log"
			tail -n 60 "$odir/results.log" | tr -d '\r'
			if [[ "$result" =~ ^(HUNG|CRASH|NOEXT4)$ ]]; then
				echo "---- last 40 lines of $odir/console.log"
				tail -n 40 "$odir/console.log" | tr -d '\r'
				[[ -s "$odir/qemu.log" ]] && {
					echo "---- $odir/qemu.log"
					tail -n 20 "$odir/qemu.log"
				}
			fi
			echo "===="
		} >&2
	fi
	note "$k $typ: guest mounts:$(tr -d '\r' <"$odir/results.log" | sed -n 's/^VIGIL-VMTEST-MOUNTS//p')"
	note "$k $typ: $result in ${secs}s (passed $pass, failed $fail, skipped $skip, host-only $host)"
}

# The auto run's verdict on the core cases, for the cross-load table's diagonal: the
# kernel's own object the loader chose (asserted by TestObjectChoice).
own_cell() { # K
	local log=$OUT/$1/results.log rel names n st bad="" unrun=0 obj=$1 kdir fam
	[[ -s "$log" && -s "$OUT/$1/summary" ]] || return 1
	rel=$(awk '{ print $3 }' "$OUT/$1/summary")
	names=$(sed -n 's/^[a-z]* ^(\(.*\))\$$/\1/p' <<<"$XLOAD_TESTS" | tr '|\n' '  ')
	for n in $names; do
		st=$(tr -d '\r' <"$log" | sed -n "s/^--- \(PASS\|FAIL\|SKIP\): $n (.*/\1/p" | tail -n1)
		[[ -n "$st" ]] || unrun=1
		[[ "$st" == PASS || -z "$st" ]] || bad+="$n:$st "
	done
	# a narrowed run (VMTEST_ARGS) that left a core case out says nothing about the cell
	((!unrun)) || [[ -n "$bad" ]] || return 1
	kdir=$("$KERNELS" path "$1" 2>/dev/null) || return 1
	fam=$(own_family "$kdir")
	[[ "$fam" == kprobe ]] || obj=$fam-$1
	if [[ -z "$bad" ]]; then
		printf '%s\t%s\t%s\tPASS\t-\n' "$obj" "$1" "$rel"
	else
		printf '%s\t%s\t%s\tFAIL\t%s\n' "$obj" "$1" "$rel" "auto run: ${bad% }"
	fi
}

# ---- main ------------------------------------------------------------------------------

PLAN=()
for k in "${KS[@]}"; do
	# a retired line gets one row, whatever the run types
	krc=0
	"$KERNELS" path "$k" >/dev/null 2>&1 || krc=$?
	if ((krc == 3)); then
		PLAN+=("$k:auto")
		continue
	fi
	for r in $RUNS; do PLAN+=("$k:$r"); done
done
[[ -z "$FWD" ]] || PLAN+=("$FWD:forward")
((${#PLAN[@]})) || die "nothing to run"

# build the shared archives once, before any parallel job needs them
for k in "${KS[@]}" $FWD; do
	d=$("$KERNELS" path "$k" 2>/dev/null) || continue
	common_cpio "$(compressor "$d")" >/dev/null
done

if ((JOBS <= 1)); then
	for e in "${PLAN[@]}"; do run_kernel "${e%%:*}" "${e#*:}"; done
else
	running=0
	for e in "${PLAN[@]}"; do
		if ((running >= JOBS)); then
			wait -n || true
			running=$((running - 1))
		fi
		run_kernel "${e%%:*}" "${e#*:}" &
		running=$((running + 1))
	done
	wait || true
fi

status=0
tp=0 tf=0 ts=0
printf '\n%-7s %-10s %-22s %-8s %-7s %-7s %-8s %-10s %-7s %-7s %s\n' \
	kernel run release result passed failed skipped host-only notest seconds families
for e in "${PLAN[@]}"; do
	k=${e%%:*} r=${e#*:}
	if [[ -s "$WORK/row.$k.$r" ]]; then
		cat "$WORK/row.$k.$r"
		read -r _ _ _ result pass fail skip host _ <"$WORK/row.$k.$r"
		case $result in
		PASS | RETIRED | N/A) ;;
		*) status=1 ;;
		esac
		if [[ "$pass" =~ ^[0-9]+$ ]]; then
			tp=$((tp + pass)) tf=$((tf + fail)) ts=$((ts + skip + host))
		fi
	else
		printf '%-7s %-10s %-22s %-8s\n' "$k" "$r" - ERROR
		status=1
	fi
done

# The cross-load table: object x kernel, from the xload runs and the auto runs' own cells.
if [[ " $RUNS " == *" xload "* ]]; then
	xl=$WORK/crossload.tsv
	: >"$xl"
	for k in "${KS[@]}"; do
		[[ " $RUNS " == *" auto "* ]] && own_cell "$k" >>"$xl" || true
		[[ -s "$OUT/$k/xload/crossload" ]] && cat "$OUT/$k/xload/crossload" >>"$xl"
	done
	if [[ -s "$xl" ]]; then
		cp "$xl" "$OUT/crossload.tsv"
		echo
		echo "cross-load: each kprobe and fentry object forced on each kernel at or above its own, and the kernel's own objects of every family (core cases; own chosen object = the auto run)"
		mapfile -t objs < <(cut -f1 "$xl" | sort -uV)
		mapfile -t kers < <(cut -f2 "$xl" | sort -uV)
		printf '%-12s' object
		printf ' %-7s' "${kers[@]}"
		echo
		for o in "${objs[@]}"; do
			printf '%-12s' "$o"
			for k in "${kers[@]}"; do
				c=$(awk -F'\t' -v o="$o" -v k="$k" '$1 == o && $2 == k { print $4 }' "$xl" | tail -n1)
				printf ' %-7s' "${c:--}"
				[[ "$c" != FAIL ]] || status=1
			done
			echo
		done
		awk -F'\t' '$4 == "FAIL" { printf "  %s on %s: %s\n", $1, $2, $5 }' "$xl"
	fi
fi
awk '$4 == "RETIRED" || $4 == "N/A" { $1 = $1; print "  " $0 }' "$WORK"/row.* 2>/dev/null | sort -u | sed '1i notes:' || true
echo "logs: $OUT/<kernel>/{console.log,results.log}, $OUT/<kernel>/{tracepoint,xload}/"
echo "vmtest: $tp passed, $tf failed, $ts skipped"
exit "$status"
