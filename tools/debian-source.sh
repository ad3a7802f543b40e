# tools/debian-source.sh - shell functions shared by tools/build-*.sh: build
# packages and Debian source packages through apt. Sourced, not run.
#
#   deb_need PKG...                  install the packages not yet installed
#   deb_src_known PKG [VERSION]      true when apt knows that source package
#                                    (at that version)
#   deb_src_add PKG SUITE TAG        add a deb-src entry for SUITE in
#                                    /etc/apt/sources.list.d/semcachefs-TAG-src.sources
#                                    (signed by the keyring the system's Debian
#                                    entry uses) unless there, then apt-get update
#   deb_src_enable PKG VERSION SUITE TAG
#                                    make apt know PKG (at VERSION if not
#                                    empty), with deb_src_add when it does not
#   deb_src_fetch PKG VERSION DIR    apt-get source into DIR, unpacked in DIR/src
#
# Also defines die and say (messages to stderr, named after the calling
# script) and SUDO ("" as root, "sudo" otherwise). Source entries are
# deb-src only: no binary package ever comes from the added suite. Nothing
# here touches apt when all is already there.

die() { echo "${0##*/}: $*" >&2; exit 1; }
say() { echo "${0##*/}: $*" >&2; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

deb_need() {
	local need=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	say "installing ${need[*]}"
	$SUDO apt-get update -q >&2
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
}

deb_src_known() {
	local versions
	versions=$(apt-cache showsrc "$1" 2>/dev/null | sed -n "/^Package: $1\$/,/^\$/s/^Version: *//p")
	[ -n "$versions" ] || return 1
	[ -z "${2:-}" ] || grep -qxF "$2" <<<"$versions"
}

deb_src_add() {
	local pkg=$1 suite=$2 list=/etc/apt/sources.list.d/semcachefs-$3-src.sources keyring
	if [ ! -f "$list" ]; then
		keyring=$(sed -n 's/^Signed-By: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
		keyring=${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
		say "adding Debian source packages ($suite) in $list"
		printf '%s\n' "# added by semcachefs tools/: Debian source packages ($pkg)" \
			"Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: $suite" \
			"Components: main" "Signed-By: $keyring" | $SUDO tee "$list" >/dev/null
	fi
	$SUDO apt-get update -q >&2
}

deb_src_enable() {
	deb_src_known "$1" "$2" && return 0
	deb_src_add "$1" "$3" "$4"
	deb_src_known "$1" "$2" ||
		die "apt knows no source package '$1${2:+=$2}' even after adding a $3 deb-src entry: check apt-get update"
}

deb_src_fetch() {
	(cd "$3" && apt-get source -q --download-only "$1=$2" >&2 &&
		dpkg-source -x "$1"_*.dsc src >&2) ||
		die "apt-get source $1=$2 failed (is that version in a deb-src suite?)"
}
