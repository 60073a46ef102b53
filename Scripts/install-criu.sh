#!/usr/bin/env bash
# install-criu.sh - make a working criu available for checkpoint/restore (run as root).
#
#   CRIU=$(bash Scripts/install-criu.sh)
#
# Prints the path of the criu to use on stdout (the log goes to stderr):
# 1. the system criu (apt package `criu`), when `criu check` passes on this kernel and it is new
#    enough for it (see below);
# 2. otherwise Debian testing's (forky) criu, unpacked into a private prefix ($CRIU_PREFIX,
#    default /opt/swiftlet-criu) and run through that release's own dynamic loader by a small
#    wrapper script ($CRIU_PREFIX/criu). Nothing else on the system changes: the forky apt source
#    is pinned to priority 1 and the packages are only downloaded and unpacked (`apt-get download`,
#    `dpkg-deb -x`), never installed.
# Why not trixie's criu 4.1.1 (the machine notes' recipe): it passes `criu check` on Linux 6.18
# but cannot dump any inet socket there: Linux 6.16 restricted SO_PASSCRED/SO_PASSSEC to unix and
# netlink sockets and criu < 4.2 fails on the getsockopt ("Can't get 1:16 opt", CRIU issue 2705).
# Bookworm's 3.17 fails `criu check` (vDSO). So on kernels >= 6.16 criu must be 4.2 or newer.
# Also installs iptables (criu runs iptables-restore to lock a container's network while it works).
# Idempotent: a prefix whose wrapper passes these checks is reused as it is.
set -euo pipefail

PREFIX=${CRIU_PREFIX:-/opt/swiftlet-criu}
WRAPPER=$PREFIX/criu
# shellcheck source=Scripts/forky-source.sh
. "$(dirname "${BASH_SOURCE[0]}")/forky-source.sh"
# criu 4.2 and what it needs beyond bookworm's libraries: libcompel, glibc (with its loader),
# libnet 1.3 and libnl 3.11+.
PACKAGES=(criu libcompel1 libc6 libnet9 libnl-3-200 libnl-route-3-200)

log() { echo "install-criu: $*" >&2; }
die() { echo "install-criu: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

version_code() { # "Version: 4.2.1" -> 40201
    "$1" --version 2>/dev/null | awk '/^Version:/ { split($2, v, "."); printf "%d\n", v[1] * 10000 + v[2] * 100 + v[3]; exit }'
}
works() { # criu path -> 0 when `criu check` passes and it can dump sockets on this kernel
    "$1" check >/dev/null 2>&1 || return 1
    local kmajor kminor
    IFS=. read -r kmajor kminor _ <<<"$(uname -r)"
    if [ "$kmajor" -gt 6 ] || { [ "$kmajor" -eq 6 ] && [ "${kminor%%[!0-9]*}" -ge 16 ]; }; then
        [ "$(version_code "$1")" -ge 40200 ] || return 1
    fi
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
    log "installing the system criu (it also brings the libraries the newer criu needs)"
    apt_install criu || log "the system criu could not be installed; trying $SUITE's"
fi
if command -v criu >/dev/null 2>&1 && works "$(command -v criu)"; then
    log "using the system criu ($(criu --version 2>/dev/null | head -n 1))"
    command -v criu
    exit 0
fi
log "the system criu fails 'criu check' or is too old for this kernel; unpacking Debian $SUITE's criu into $PREFIX"

add_forky_source
# The package lists may be older than forky's current versions: refresh them before downloading.
apt-get update -q >&2 || die "apt-get update failed (with the $SUITE source $SOURCE_LIST)"

work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "${PACKAGES[@]/%//$SUITE}" >&2) || die "apt-get download ${PACKAGES[*]} (from $SUITE) failed"

stage=$PREFIX.new
rm -rf "$stage"
mkdir -p "$stage"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$stage" || die "dpkg-deb -x $deb failed"; done
lib=$PREFIX/usr/lib/x86_64-linux-gnu
[ -x "$stage/usr/sbin/criu" ] || die "the criu package has no usr/sbin/criu"
[ -e "$stage/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] || die "the libc6 package has no ld-linux-x86-64.so.2"
cat >"$stage/criu" <<EOF
#!/bin/sh
# criu from Debian $SUITE, run through that release's loader and libraries (Scripts/install-criu.sh).
exec $lib/ld-linux-x86-64.so.2 --library-path $lib:/usr/lib/x86_64-linux-gnu $PREFIX/usr/sbin/criu "\$@"
EOF
chmod 755 "$stage/criu"
rm -rf "$PREFIX"
mv "$stage" "$PREFIX"

works "$WRAPPER" || die "$WRAPPER does not work here: $("$WRAPPER" --version 2>&1 | head -n 1); $("$WRAPPER" check 2>&1 | tail -n 3)"
log "using $WRAPPER ($("$WRAPPER" --version 2>/dev/null | head -n 1))"
echo "$WRAPPER"
