#!/usr/bin/env bash
# install-criu.sh - make a working criu available for checkpoint/restore (run as root).
#
#   CRIU=$(bash Scripts/install-criu.sh)
#
# Prints the path of the criu to use on stdout (the log goes to stderr):
# 1. the system criu (apt package `criu`), when `criu check` passes on this kernel;
# 2. otherwise Debian trixie's criu, unpacked into a private prefix ($CRIU_PREFIX, default
#    /opt/swiftlet-criu) and run through trixie's own dynamic loader by a small wrapper script
#    ($CRIU_PREFIX/criu). Bookworm's criu 3.17 fails `criu check` on Linux 6.18 (vDSO); trixie's
#    4.1.1 works (see the machine notes, CRIU section). Nothing else on the system is upgraded:
#    the trixie apt source is pinned to priority 1 and the packages are only downloaded and
#    unpacked (`apt-get download`, `dpkg-deb -x`), never installed.
# Also installs iptables (criu runs iptables-restore to lock a container's network while it works).
# Idempotent: a prefix whose wrapper passes `criu check` is reused as it is.
set -euo pipefail

PREFIX=${CRIU_PREFIX:-/opt/swiftlet-criu}
WRAPPER=$PREFIX/criu
TRIXIE_LIST=/etc/apt/sources.list.d/swiftlet-trixie.list
TRIXIE_PIN=/etc/apt/preferences.d/swiftlet-trixie
# What criu 4.1.1 needs beyond bookworm's libraries: its own binary, libcompel and a newer glibc.
PACKAGES=(criu/trixie libcompel1/trixie libc6/trixie)

log() { echo "install-criu: $*" >&2; }
die() { echo "install-criu: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

works() { # criu path -> 0 when `criu check` passes
    "$1" check >/dev/null 2>&1
}

# CRIU locks a container's network namespace with iptables-restore while it dumps and restores it.
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "$@" >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "$@" >&2; }
}
if ! command -v iptables-restore >/dev/null 2>&1; then
    log "installing iptables (criu's network lock)"
    apt_install iptables || die "could not install iptables"
fi

if [ -x "$WRAPPER" ] && works "$WRAPPER"; then
    log "using $WRAPPER (already installed)"
    echo "$WRAPPER"
    exit 0
fi

if ! command -v criu >/dev/null 2>&1; then
    log "installing the system criu (it also brings the libraries trixie's criu needs)"
    apt_install criu || log "the system criu could not be installed; trying trixie's"
fi
if command -v criu >/dev/null 2>&1 && works "$(command -v criu)"; then
    log "using the system criu ($(criu --version 2>/dev/null | head -n 1))"
    command -v criu
    exit 0
fi
log "the system criu fails 'criu check' here; unpacking Debian trixie's criu into $PREFIX"

# A trixie source that apt never prefers (priority 1): only `apt-get download pkg/trixie` uses it.
if [ ! -f "$TRIXIE_LIST" ]; then
    # The mirror bookworm comes from (uncommented "URIs:" or "deb" lines), else Debian's own.
    uri=$(grep -rhE '^[[:space:]]*(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
    uri=${uri:-http://deb.debian.org/debian}
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" >"$TRIXIE_LIST"
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 1\n' >"$TRIXIE_PIN"
fi
apt-get update -q >&2 || die "apt-get update failed (with the trixie source $TRIXIE_LIST)"

work=$(mktemp -d)
chmod 755 "$work" # apt downloads as the _apt user
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "${PACKAGES[@]}" >&2) || die "apt-get download ${PACKAGES[*]} failed"

stage=$PREFIX.new
rm -rf "$stage"
mkdir -p "$stage"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$stage" || die "dpkg-deb -x $deb failed"; done
lib=$PREFIX/usr/lib/x86_64-linux-gnu
[ -x "$stage/usr/sbin/criu" ] || die "the criu package has no usr/sbin/criu"
[ -e "$stage/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] || die "the libc6 package has no ld-linux-x86-64.so.2"
cat >"$stage/criu" <<EOF
#!/bin/sh
# criu from Debian trixie, run through trixie's loader and libraries (Scripts/install-criu.sh).
exec $lib/ld-linux-x86-64.so.2 --library-path $lib:/usr/lib/x86_64-linux-gnu $PREFIX/usr/sbin/criu "\$@"
EOF
chmod 755 "$stage/criu"
rm -rf "$PREFIX"
mv "$stage" "$PREFIX"

works "$WRAPPER" || die "$WRAPPER check fails: $("$WRAPPER" check 2>&1 | tail -n 3)"
log "using $WRAPPER ($("$WRAPPER" --version 2>/dev/null | head -n 1))"
echo "$WRAPPER"
