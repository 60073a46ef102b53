#!/usr/bin/env bash
# soak.sh - create/start/delete a container N times and fail if anything grows. As root:
#
#   bash Scripts/soak.sh [N]                      (default N=2000)
#   SWIFTLET=/path/to/swiftlet SWIFTLET_ROOTFS=/path/to/rootfs bash Scripts/soak.sh 100
#
# Each cycle: `create` (sleep 1000), `start`, `state`, then `delete --force` (odd cycles) or
# `kill KILL` + `delete` (even cycles). After a warm-up of 5 cycles it takes a baseline, and at the
# end it compares:
#   mounts        host mounts (/proc/self/mountinfo) of the rootfs or the soak's directory
#                                                                     must not grow
#   cgroups       soak-* directories under /sys/fs/cgroup/*/swiftlet and /sys/fs/cgroup/swiftlet
#                                                                     must not grow
#   state dirs    entries in the soak's --root                        must be 0
#   processes     live processes carrying the soak's tag in their environment   must be 0
#   container fds open descriptors of a started container's process (what the runtime passes on)
#                                                                     must not grow
#   open files    system-wide, first field of /proc/sys/fs/file-nr    printed only: every other process
#                                                                     on the machine moves it
#   peak RSS      of `create` (/usr/bin/time), median of 5 at the start and 5 at the end
#                                                                     may grow by 10% + 512 KiB
# SWIFTLET defaults to $SWIFTLET_BINARY, else the debug binary from Scripts/build.sh; SWIFTLET_ROOTFS
# to Scripts/make-rootfs.sh's rootfs. Prints one line per measure and "soak: PASS/FAIL ..." last.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${1:-2000}
die() { echo "soak: error: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root"
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] || die "N must be a positive number"

SL=${SWIFTLET:-${SWIFTLET_BINARY:-}}
[ -n "$SL" ] || SL=$(bash "$HERE/build.sh" debug) || die "build.sh failed"
ROOTFS=${SWIFTLET_ROOTFS:-}
[ -n "$ROOTFS" ] || ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"
[ -x "$SL" ] || die "no swiftlet binary at $SL"
SL=$(realpath "$SL") ROOTFS=$(realpath "$ROOTFS")
[ -x "$ROOTFS/bin/busybox" ] || die "no test rootfs at $ROOTFS"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"

WORK=$(mktemp -d /tmp/swiftlet-soak.XXXXXX)
ROOT=$WORK/root
BUNDLE=$WORK/bundle
TAG="SWIFTLET_SOAK_TAG=$$-$RANDOM"
mkdir -p "$ROOT" "$BUNDLE"
cleanup() {
    for d in "$ROOT"/*/; do
        [ -d "$d" ] && env "$TAG" "$SL" --root "$ROOT" delete --force "$(basename "$d")" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$BUNDLE" && "$SL" spec) || die "swiftlet spec failed"
# The default spec with this rootfs, no terminal and a long sleep.
sed -i -e "s|\"path\": \"rootfs\"|\"path\": \"$ROOTFS\"|" \
    -e 's|"terminal": true|"terminal": false|' \
    -e 's|"sh"$|"sleep", "1000"|' "$BUNDLE/config.json"
grep -q '"sleep", "1000"' "$BUNDLE/config.json" || die "could not edit the spec's args"

sl() { env "$TAG" "$SL" --root "$ROOT" "$@"; }

cycle() { # cycle ID I
    local id=$1
    shift
    # The container inherits create's stdio: files, so that no pipe of the caller stays open.
    sl create --bundle "$BUNDLE" "$id" >/dev/null 2>"$WORK/err" || die "cycle $1: create failed: $(cat "$WORK/err")"
    sl start "$id" || die "cycle $1: start failed"
    sl state "$id" | grep -q '"running"' || die "cycle $1: not running after start"
    if (($1 % 2)); then
        sl delete --force "$id" || die "cycle $1: delete --force failed"
    else
        sl kill "$id" KILL || die "cycle $1: kill failed"
        local tries=0
        until sl state "$id" | grep -q '"stopped"'; do
            tries=$((tries + 1))
            [ $tries -lt 500 ] || die "cycle $1: not stopped 5 s after SIGKILL"
            sleep 0.01
        done
        sl delete "$id" || die "cycle $1: delete failed"
    fi
}

mounts() { grep -c -e "$WORK" -e "$ROOTFS" /proc/self/mountinfo || true; }
cgroups() { find /sys/fs/cgroup/*/swiftlet /sys/fs/cgroup/swiftlet -mindepth 1 -type d -name 'soak-*' 2>/dev/null | wc -l; }
statedirs() { find "$ROOT" -mindepth 1 -maxdepth 1 | wc -l; }
tagged() {
    local n=0 p
    for p in /proc/[0-9]*; do
        [ "$(cut -d' ' -f3 "$p/stat" 2>/dev/null || echo Z)" = Z ] && continue
        grep -qzx "$TAG" "$p/environ" 2>/dev/null && n=$((n + 1))
    done
    echo $n
}
openfiles() { cut -f1 /proc/sys/fs/file-nr; }
containerfds() { # open fds of a freshly started container's process
    local id=soak-fds-$1 pid n
    sl create --bundle "$BUNDLE" "$id" >/dev/null 2>"$WORK/err" || die "create for the fd sample failed: $(cat "$WORK/err")"
    sl start "$id" || die "start for the fd sample failed"
    pid=$(sl state "$id" | sed -n 's/^ *"pid": \([0-9]*\).*/\1/p')
    [ -n "$pid" ] && [ "$pid" -gt 0 ] || die "no pid for the fd sample"
    n=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    sl delete --force "$id" || die "delete of the fd sample failed"
    echo "$n"
}
rss() { # median peak RSS (KiB) of `create` over 5 creates
    local i vals=()
    for i in 1 2 3 4 5; do
        # Output to files, never a pipe: the container inherits create's stdio and keeps it open.
        env "$TAG" /usr/bin/time -o "$WORK/rss" -f '%M' "$SL" --root "$ROOT" create --bundle "$BUNDLE" \
            "soak-rss-$1-$i" >/dev/null 2>"$WORK/err" || die "create for the RSS sample failed: $(cat "$WORK/err")"
        vals+=("$(tail -n 1 "$WORK/rss")")
        sl delete --force "soak-rss-$1-$i" || die "delete of the RSS sample failed"
    done
    printf '%s\n' "${vals[@]}" | sort -n | sed -n 3p
}

for i in 1 2 3 4 5; do cycle "soak-warmup-$i" "$i"; done
m0=$(mounts) c0=$(cgroups) f0=$(openfiles) r0=$(rss start) d0=$(containerfds start)
start=$SECONDS
for ((i = 1; i <= N; i++)); do
    cycle "soak-$i" "$i"
    if ((i % 500 == 0)); then echo "soak: $i/$N cycles ($((SECONDS - start)) s)"; fi
done
secs=$((SECONDS - start))
r1=$(rss end) d1=$(containerfds end) m1=$(mounts) c1=$(cgroups) s1=$(statedirs) p1=$(tagged) f1=$(openfiles)

fail=0
check() { # check NAME BEFORE AFTER ALLOWED_GROWTH
    local verdict=ok
    if (($3 > $2 + $4)); then verdict=GREW; fail=1; fi
    printf 'soak: %-12s start %-8s end %-8s %s\n' "$1" "$2" "$3" "$verdict"
}
check mounts "$m0" "$m1" 0
check cgroups "$c0" "$c1" 0
check "state dirs" 0 "$s1" 0
check processes 0 "$p1" 0
check "container fds" "$d0" "$d1" 0
printf 'soak: %-12s start %-8s end %-8s (system-wide, not checked)\n' "open files" "$f0" "$f1"
check "rss KiB" "$r0" "$r1" $((r0 / 10 + 512))
result=PASS
[ $fail = 0 ] || result=FAIL
echo "soak: $result: $N cycles in $secs s ($((secs * 1000 / N)) ms per cycle), binary $SL"
[ $fail = 0 ]
