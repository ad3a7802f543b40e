#!/bin/sh
# gen-policy-man.sh TEMPLATE SEMCACHEFS VERSION: semcachefs-policy(5) on
# stdout: TEMPLATE with the line @KEYS@ replaced by what
# "SEMCACHEFS --policy-keys=man" prints from the key table that parses
# policies, and @VERSION@ by VERSION. Run by the build (fs/meson.build).
set -eu
sed -n -e '/^@KEYS@$/q' -e "s/@VERSION@/$3/" -e p "$1"
"$2" --policy-keys=man
sed -e '1,/^@KEYS@$/d' "$1"
