#!/usr/bin/env bash
# install-anchors.sh - the newest runc and crun (Debian forky: runc 1.3.x, crun 1.2x) in a private prefix,
# as behaviour anchors for the compatibility tests and speed anchors for bench.sh (run as root).
#
#   eval "$(bash Scripts/install-anchors.sh)"    # sets RUNC_NEW=... and CRUN_NEW=...
#
# Prints `RUNC_NEW=PATH` and `CRUN_NEW=PATH` on stdout (the log goes to stderr). CRUN_NEW is the wrapper
# `crun-host`: crun refuses hybrid cgroup hosts like this one (environment.md), so there it runs crun in a
# private mount namespace without /sys/fs/cgroup/unified; elsewhere it just execs crun. The packages are only
# downloaded and unpacked (`apt-get download`, `dpkg-deb -x`) into $ANCHOR_PREFIX (default
# /opt/swiftlet-anchors), never installed; the forky apt source is pinned to priority 1 (the same source
# Scripts/install-criu.sh adds). Each binary is a patchelf'd copy that uses forky's loader and libraries
# (a shell wrapper would add a process and break their /proc/self/exe re-exec).
# Idempotent: a prefix whose binaries answer --version is reused.
set -euo pipefail

PREFIX=${ANCHOR_PREFIX:-/opt/swiftlet-anchors}
# shellcheck source=Scripts/forky-source.sh
. "$(dirname "${BASH_SOURCE[0]}")/forky-source.sh"
PACKAGES=(runc crun libc6 libseccomp2 libcap2 libjson-c5 libblake3-0 libsystemd0 libyajl2 libgcrypt20
    libgpg-error0 liblz4-1 liblzma5 libzstd1 libcap2)

log() { echo "install-anchors: $*" >&2; }
die() { echo "install-anchors: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
works() { "$PREFIX/bin/runc" --version >/dev/null 2>&1 && "$PREFIX/bin/crun-host" --version >/dev/null 2>&1; }
report() {
    echo "RUNC_NEW=$PREFIX/bin/runc"
    echo "CRUN_NEW=$PREFIX/bin/crun-host"
}
if works; then
    log "using $PREFIX ($("$PREFIX/bin/runc" --version | head -n 1); $("$PREFIX/bin/crun" --version | head -n 1))"
    report
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v patchelf >/dev/null 2>&1; then
    apt-get install -y -q --no-install-recommends patchelf >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends patchelf >&2; } ||
        die "could not install patchelf"
fi
add_forky_source

work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
mapfile -t unique < <(printf '%s\n' "${PACKAGES[@]}" | sort -u)
for p in "${unique[@]}"; do
    (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$p/$SUITE" >&2) ||
        { apt-get update -q >&2; (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$p/$SUITE" >&2); } ||
        log "warning: $p/$SUITE could not be downloaded (the binaries may still work without it)"
done

stage=$PREFIX.new
rm -rf "$stage"
mkdir -p "$stage/bin"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$stage/root" || die "dpkg-deb -x $deb failed"; done
lib=$PREFIX/root/usr/lib/x86_64-linux-gnu
for b in runc crun; do
    src=$(find "$stage/root/usr" -type f -name "$b" -perm -u+x | head -n 1)
    [ -n "$src" ] || die "no $b binary in the $SUITE package"
    cp "$src" "$stage/bin/$b"
    if file "$stage/bin/$b" 2>/dev/null | grep -q 'dynamically linked' || readelf -l "$stage/bin/$b" | grep -q INTERP; then
        patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --set-rpath "$lib" "$stage/bin/$b"
    fi
done
cat >"$stage/bin/crun-host" <<EOF
#!/bin/sh
# crun on a hybrid cgroup host (Scripts/install-anchors.sh): without the unified mount it drives v1 only.
mountpoint -q /sys/fs/cgroup/unified 2>/dev/null || exec $PREFIX/bin/crun "\$@"
exec unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "\$0" "\$@"' $PREFIX/bin/crun "\$@"
EOF
chmod 755 "$stage/bin/crun-host"
rm -rf "$PREFIX"
mv "$stage" "$PREFIX"
works || die "the unpacked runc/crun do not run: $("$PREFIX/bin/runc" --version 2>&1 | head -n 2); $("$PREFIX/bin/crun" --version 2>&1 | head -n 2)"
log "installed $("$PREFIX/bin/runc" --version | head -n 1); $("$PREFIX/bin/crun" --version | head -n 1)"
report
