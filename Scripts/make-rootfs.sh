#!/usr/bin/env bash
# make-rootfs.sh - build the busybox-static test rootfs.
#
#   bash Scripts/make-rootfs.sh [DEST]        (default: <repo>/test-rootfs, gitignored)
#
# Contents: /bin/busybox (Debian's busybox-static), a symlink to it for every applet of
# `busybox --list` in /bin (and at its usual place from `busybox --list-full`, e.g. /usr/bin/env),
# /bin/sh, empty dirs proc sys dev tmp etc root var/run home/tester, /etc/passwd (root 0,
# nobody 65534, tester 1000:1000), /etc/group, /etc/hosts, an empty /etc/resolv.conf.
#
# Idempotent: DEST/.swiftlet-rootfs records this script's layout version and the busybox binary it
# was built from; when it matches, the script exits at once. Otherwise the tree is built in a
# temporary sibling directory and renamed into place, so DEST is never half-built.
# Needs root only to chown /home/tester (skipped with a note otherwise) and busybox-static
# (Scripts/install-deps.sh).
set -euo pipefail

LAYOUT=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DEST=${1:-$REPO/test-rootfs}
BB=${BUSYBOX:-/bin/busybox}

die() { echo "make-rootfs: error: $*" >&2; exit 1; }

[ -x "$BB" ] || die "$BB not found: apt-get install busybox-static (or run Scripts/install-deps.sh)"
if ldd "$BB" >/dev/null 2>&1; then die "$BB is dynamically linked: install busybox-static"; fi

STAMP_WANT="layout=$LAYOUT busybox=$(cksum <"$BB" | cut -d' ' -f1-2)"
if [ -f "$DEST/.swiftlet-rootfs" ] && [ "$(cat "$DEST/.swiftlet-rootfs")" = "$STAMP_WANT" ] &&
    [ -x "$DEST/bin/busybox" ]; then
    echo "$DEST"
    exit 0
fi

mkdir -p "$(dirname "$DEST")"
DEST=$(cd "$(dirname "$DEST")" && pwd)/$(basename "$DEST")
TMP=$(mktemp -d "$DEST.tmp.XXXXXX")
trap 'rm -rf --one-file-system "$TMP"' EXIT
chmod 755 "$TMP"

mkdir -p "$TMP"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc,root,var/run,home/tester,tmp}
chmod 1777 "$TMP/tmp"
chmod 700 "$TMP/root"
cp "$BB" "$TMP/bin/busybox"
chmod 755 "$TMP/bin/busybox"

# Every applet in /bin, plus its canonical location (usr/bin/env, sbin/ip, ...).
while read -r applet; do
    [ -e "$TMP/bin/$applet" ] || ln -s /bin/busybox "$TMP/bin/$applet"
done < <("$BB" --list)
while read -r path; do
    case $path in */*) ;; *) continue ;; esac # linuxrc
    [ -e "$TMP/$path" ] || [ -L "$TMP/$path" ] || ln -s /bin/busybox "$TMP/$path"
done < <("$BB" --list-full)
[ -L "$TMP/bin/sh" ] || ln -s /bin/busybox "$TMP/bin/sh"

cat >"$TMP/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
EOF
cat >"$TMP/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
tester:x:1000:
EOF
cat >"$TMP/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
: >"$TMP/etc/resolv.conf"
if [ "$(id -u)" = 0 ]; then
    chown 1000:1000 "$TMP/home/tester"
else
    echo "make-rootfs: note: not root, /home/tester stays owned by $(id -u)" >&2
fi
echo "$STAMP_WANT" >"$TMP/.swiftlet-rootfs"

# Replace an outdated tree. --one-file-system: never descend into something mounted inside it.
if [ -e "$DEST" ]; then
    rm -rf --one-file-system "$DEST" || die "cannot remove the old $DEST (something mounted inside?)"
fi
mv "$TMP" "$DEST"
trap - EXIT
echo "$DEST"
