#!/usr/bin/env bash
# Build vigil's deb and rpm packages with nfpm (a Go tool dependency in go.mod:
# `go tool nfpm`, so no packaging tools need installing).
#
#   scripts/package.sh [--version V] [--out DIR] [deb] [rpm]    (default: both, into dist/)
#   scripts/package.sh version                                   print the package version
#
# Writes DIR/vigil_<V>_amd64.deb and DIR/vigil-<V>.x86_64.rpm and prints their paths.
# Inputs: scripts/package/ (nfpm.yaml, the unit, logrotate, maintainer scripts); the binary
# (static, built here with the Makefile's flags) and /etc/vigil/vigil.toml (the embedded
# default configuration plus file output) are made in build/package/.
#
# The version comes from `git describe` (docs/install.md, "Versions"):
#   tag v1.2.3 on HEAD          1.2.3
#   4 commits after v1.2.3      1.2.3+git4.<hash>
#   tag v1.3.0-rc1              1.3.0~rc1           (~ sorts before the release)
#   no v* tag                   0.0.0+git<commits>.<hash>
#   uncommitted changes         ... .dirty appended
# These sort the same way in dpkg and rpm, so each build of a later commit upgrades the
# previous one.
set -Eeuo pipefail
trap '_erc=$?; ((BASH_SUBSHELL)) || echo "package.sh: line $LINENO: \"$BASH_COMMAND\" failed ($_erc)" >&2' ERR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

die() {
	echo "package.sh: $*" >&2
	exit 1
}

# deb/rpm-legal version from git describe
pkg_version() {
	local d tag n hash dirty="" base pre
	if ! git rev-parse --git-dir >/dev/null 2>&1; then
		echo "0.0.0+unknown"
		return
	fi
	[[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && dirty=.dirty
	if d=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.3-rc1-4-gabc1234
		hash=${d##*-g}
		d=${d%-g*}
		n=${d##*-}
		tag=${d%-*}
		tag=${tag#v}
		base=${tag%%-*}
		pre=""
		[[ "$tag" == *-* ]] && pre="~${tag#*-}"
		pre=${pre//-/.}
		if ((n == 0)); then
			echo "$base$pre${dirty:++git0$dirty}"
		else
			echo "$base$pre+git$n.$hash$dirty"
		fi
	else
		n=$(git rev-list --count HEAD)
		hash=$(git rev-parse --short=7 HEAD)
		echo "0.0.0+git$n.$hash$dirty"
	fi
}

VERSION="" OUT=dist FORMATS=()
while (($#)); do
	case $1 in
	version)
		pkg_version
		exit 0
		;;
	--version)
		VERSION=${2:?--version needs a value}
		shift
		;;
	--out)
		OUT=${2:?--out needs a value}
		shift
		;;
	deb | rpm) FORMATS+=("$1") ;;
	-h | --help)
		sed -n '2,/^set -Eeuo/p' "$0" | sed -e '/^set -Eeuo/d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
((${#FORMATS[@]})) || FORMATS=(deb rpm)
[[ -n "$VERSION" ]] || VERSION=$(pkg_version)
[[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] ||
	die "version '$VERSION' is not deb- and rpm-legal (a digit first, then letters, digits, . + ~)"

BUILD=$ROOT/build/package/$VERSION
rm -rf "$BUILD"
mkdir -p "$BUILD" "$OUT"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(git log -1 --format=%cI 2>/dev/null || echo unknown)
CGO_ENABLED=0 "$GO" build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$commit -X main.date=$date" \
	-o "$BUILD/vigil" ./cmd/vigil

{
	"$BUILD/vigil" default-config
	cat <<'TOML'

# Added by the package: records go to a file that /etc/logrotate.d/vigil
# rotates (vigil reopens it on `systemctl reload vigil`), not to standard
# output, which systemd would copy into the journal.
[output]
stdout = false

[output.file]
path = "/var/log/vigil/vigil.json"
TOML
} >"$BUILD/vigil.toml"
# the packaged configuration must be one vigil accepts
mkdir -p "$BUILD/check"
cp "$BUILD/vigil.toml" "$BUILD/check/vigil.toml"
"$BUILD/vigil" check-config -config "$BUILD/check/vigil.toml" >/dev/null ||
	die "the packaged configuration is refused by vigil check-config"

for f in "${FORMATS[@]}"; do
	case $f in
	deb) target=$OUT/vigil_${VERSION}_amd64.deb ;;
	rpm) target=$OUT/vigil-${VERSION}.x86_64.rpm ;;
	esac
	rm -f "$target"
	VIGIL_PKG_VERSION=$VERSION VIGIL_PKG_BUILD=$BUILD \
		"$GO" tool nfpm package --config scripts/package/nfpm.yaml --packager "$f" --target "$target" >&2
	echo "$target"
done
