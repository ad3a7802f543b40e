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
#   deb_src_pick PKG VERSION SUITE TAG MIN PINNED
#                                    print the version to build: VERSION (with
#                                    deb_src_add when apt does not know it), or
#                                    when SUITE dropped it and PINNED is empty,
#                                    the newest apt knows if it is MIN or later
#   deb_prefix_commit STAGE PREFIX INFO
#                                    install the staged prefix STAGE as PREFIX
#                                    (BUILD-INFO INFO, the .complete marker last;
#                                    through PREFIX.partial and a rename)
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

deb_src_pick() {
	local pkg=$1 version=$2 suite=$3 tag=$4 min=$5 pinned=$6 newest
	deb_src_known "$pkg" "$version" || deb_src_add "$pkg" "$suite" "$tag"
	if deb_src_known "$pkg" "$version"; then
		echo "$version"
		return 0
	fi
	[ -z "$pinned" ] || die "apt knows no source package $pkg=$version"
	newest=$(apt-cache showsrc "$pkg" | sed -n 's/^Version: *//p' | sort -V | tail -n1)
	dpkg --compare-versions "$newest" ge "$min" ||
		die "apt knows $pkg up to $newest only; $min or later is needed"
	say "$pkg=$version is gone from $suite: building $newest"
	echo "$newest"
}

deb_prefix_commit() {
	local part=$2.partial
	rm -rf "$part"
	mkdir -p "$(dirname "$2")"
	cp -a "$1" "$part"
	printf '%s\n' "$3" >"$part/BUILD-INFO"
	touch "$part/.complete"
	rm -rf "$2"
	mv "$part" "$2"
}
