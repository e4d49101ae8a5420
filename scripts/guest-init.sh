#!/bin/sh
# /init of vigil's test VM (busybox sh, PID 1). Built into the initramfs by
# scripts/vmtest.sh; not meant to run on a host.
#
# Console (ttyS0): kernel messages and this script's progress.
# Results (ttyS1): only what the host parses:
#   VIGIL-VMTEST-KERNEL <uname -r>
#   VIGIL-VMTEST-MOUNTS name=ok|FAIL ...
#   VIGIL-VMTEST-EXT4 ok|FAIL <reason>
#   <go test -v output of each /vigil/*.test>
#   VIGIL-VMTEST-RESULT <name> <exit code>
#   VIGIL-VMTEST-DONE
# A cross-load run repeats the test binaries once per object, between
#   VIGIL-VMTEST-OBJECT <object>
#   ... (as above: test output, VIGIL-VMTEST-RESULT per binary)
#   VIGIL-VMTEST-OBJECT-END <object>
#
# Kernel command line parameters (set by vmtest.sh):
#   vigil.args=<base64>    extra test flags (VMTEST_ARGS), shell-quoted words
#   vigil.timeout=<dur>    -test.timeout per binary (default 5m)
#   vigil.hooks=<type>     exported as VIGIL_TEST_HOOKS (testutil.SensorForce)
#   vigil.object=<name>    exported as VIGIL_TEST_OBJECT
#   vigil.forward=1        exported as VIGIL_VM_FORWARD=1: the kernel is newer than
#                          every object (testutil.ForwardVM)
#   vigil.objects=<a,b>    cross-load: run the tests once per object, with
#                          VIGIL_TEST_OBJECT=<object>
#   vigil.tests=<base64>   which binaries run, and their -test.run: lines of
#                          "<name> <regexp>" (default: every /vigil/*.test, vigil.args)

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp VIGIL_VM=1 TERM=dumb

RES=/dev/ttyS1
MOUNTS=""

log() { echo "vigil-init: $*" >/dev/console; }

off() {
	sync
	# ttyS1 output is buffered by the tty layer: give it time to drain
	sleep 1
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

mnt() { # label type target [options]
	_l=$1 _t=$2 _d=$3
	shift 3
	mkdir -p "$_d"
	if mount -t "$_t" "$@" "$_t" "$_d" 2>/dev/console; then
		MOUNTS="$MOUNTS $_l=ok"
	else
		MOUNTS="$MOUNTS $_l=FAIL"
		log "mount -t $_t $_d FAILED"
	fi
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
MOUNTS=" proc=ok sysfs=ok"
[ -c "$RES" ] || RES=/dev/console
stty -F "$RES" raw -echo 2>/dev/null || true

mnt devpts devpts /dev/pts -o gid=5,mode=620
mnt tmp tmpfs /tmp -o mode=1777
mnt run tmpfs /run -o mode=755
mnt bpffs bpf /sys/fs/bpf -o mode=700
mnt tracefs tracefs /sys/kernel/tracing
mnt debugfs debugfs /sys/kernel/debug
mnt securityfs securityfs /sys/kernel/security
mnt cgroup2 cgroup2 /sys/fs/cgroup

ARGS_B64="" TIMEOUT=5m OBJECTS="" TESTS_B64=""
read -r CMDLINE </proc/cmdline
for w in $CMDLINE; do
	case $w in
	vigil.args=*) ARGS_B64=${w#vigil.args=} ;;
	vigil.timeout=*) TIMEOUT=${w#vigil.timeout=} ;;
	vigil.hooks=*) export VIGIL_TEST_HOOKS="${w#vigil.hooks=}" ;;
	vigil.object=*) export VIGIL_TEST_OBJECT="${w#vigil.object=}" ;;
	vigil.forward=1) export VIGIL_VM_FORWARD=1 ;;
	vigil.objects=*) OBJECTS=$(echo "${w#vigil.objects=}" | tr ',' ' ') ;;
	vigil.tests=*) TESTS_B64=${w#vigil.tests=} ;;
	esac
done
ARGS=""
[ -n "$ARGS_B64" ] && ARGS=$(echo "$ARGS_B64" | base64 -d)
TESTS=""
[ -n "$TESTS_B64" ] && TESTS=$(echo "$TESTS_B64" | base64 -d)
log "forced: object=${VIGIL_TEST_OBJECT:-} hooks=${VIGIL_TEST_HOOKS:-} forward=${VIGIL_VM_FORWARD:-0} cross-load objects: ${OBJECTS:-none}"

REL=$(uname -r)
echo "VIGIL-VMTEST-KERNEL $REL" >"$RES"
hostname vigil-vm 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

# Kernel modules for the disk, in dependency order (computed on the host).
LIST=/lib/modules/$REL/vigil.modules
if [ -f "$LIST" ]; then
	while read -r m; do
		[ -n "$m" ] || continue
		out=$(insmod "/lib/modules/$REL/$m" 2>&1) || case $out in
		*"File exists"*) ;;
		*) log "insmod $m: $out" ;;
		esac
	done <"$LIST"
fi

# The ext4 scratch disk: the first virtio disk.
EXT4=FAIL reason="no /dev/vda"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
mkdir -p /mnt/ext4
if [ -b /dev/vda ]; then
	if reason=$(mount -t ext4 /dev/vda /mnt/ext4 2>&1); then
		EXT4=ok reason=""
	fi
fi
if [ "$EXT4" != ok ]; then
	reason="$reason $(dmesg | grep -iE 'ext4|virtio|vda|crc32c' | tail -n 5 | tr '\n' ' ')"
	for dst in /dev/console "$RES"; do
		{
			echo "################################################################"
			echo "VIGIL-VMTEST-EXT4 FAIL: could not mount ext4 /dev/vda on /mnt/ext4"
			echo "  $reason"
			echo "################################################################"
		} >"$dst"
	done
else
	echo "VIGIL-VMTEST-EXT4 ok" >"$RES"
fi
MOUNTS="$MOUNTS ext4=$EXT4"
echo "VIGIL-VMTEST-MOUNTS$MOUNTS" >"$RES"
log "mounts:$MOUNTS"

run1() { # name [test flags...]
	_n=$1
	shift
	log "running $_n.test ${VIGIL_TEST_OBJECT:+(object $VIGIL_TEST_OBJECT)}"
	(cd /vigil && exec "./$_n.test" -test.v -test.count=1 "-test.timeout=$TIMEOUT" "$@") \
		</dev/null >"$RES" 2>&1
	_rc=$?
	echo "VIGIL-VMTEST-RESULT $_n $_rc" >"$RES"
	log "$_n.test exited $_rc"
}

# Every test binary with vigil.args, or the binaries and patterns vigil.tests names.
run_all() {
	found=0
	if [ -n "$TESTS" ]; then
		echo "$TESTS" | while read -r n pat; do
			[ -n "$n" ] || continue
			if [ -f "/vigil/$n.test" ]; then
				run1 "$n" -test.run "$pat"
			else
				echo "VIGIL-VMTEST-RESULT $n missing" >"$RES"
			fi
		done
		found=1
	else
		eval "set -- $ARGS"
		for t in /vigil/*.test; do
			[ -f "$t" ] || continue
			found=1
			name=${t##*/}
			run1 "${name%.test}" "$@"
		done
	fi
	[ $found = 1 ] || echo "VIGIL-VMTEST-NOBINARIES no /vigil/*.test" >"$RES"
}

if [ -n "$OBJECTS" ]; then
	for o in $OBJECTS; do
		echo "VIGIL-VMTEST-OBJECT $o" >"$RES"
		export VIGIL_TEST_OBJECT="$o"
		run_all
		echo "VIGIL-VMTEST-OBJECT-END $o" >"$RES"
	done
else
	run_all
fi
echo "VIGIL-VMTEST-DONE" >"$RES"
log "done"
off
