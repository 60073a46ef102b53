#!/usr/bin/env bash
# forky-source.sh - sourced by install-criu.sh and install-anchors.sh: adds Debian forky (testing) as an
# apt source pinned to priority 1, so that only `apt-get download PKG/forky` ever takes a package from it
# (nothing on the system is upgraded), and refreshes the package lists once when the source is new.
# Defines SUITE; needs `die` from the caller.
SUITE=forky
SOURCE_LIST=/etc/apt/sources.list.d/swiftlet-$SUITE.list
SOURCE_PIN=/etc/apt/preferences.d/swiftlet-$SUITE

add_forky_source() {
    [ -f "$SOURCE_LIST" ] && return 0
    # The mirror bookworm comes from (uncommented "URIs:" or "deb" lines), else Debian's own.
    local uri
    uri=$(grep -rhE '^[[:space:]]*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
    uri=${uri:-http://deb.debian.org/debian}
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $SUITE main" >"$SOURCE_LIST"
    printf 'Package: *\nPin: release n=%s\nPin-Priority: 1\n' "$SUITE" >"$SOURCE_PIN"
    apt-get update -q >&2 || die "apt-get update failed (with the $SUITE source $SOURCE_LIST)"
}
