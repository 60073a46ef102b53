#!/usr/bin/env bash
# podman-test.sh - podman 4.3 end to end with swiftlet-monitor as its conmon, and swiftlet, runc and
# crun as the runtime.
#
#   bash Scripts/podman-test.sh [MONITOR [SWIFTLET]]
#
# MONITOR / SWIFTLET default to $SWIFTLET_MONITOR / $SWIFTLET_BINARY (Scripts/test.sh exports them),
# else <repo>/.build/debug/{swiftlet-monitor,swiftlet}.
# Everything podman needs lives in a temp dir selected through CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF (vfs storage, cgroupfs manager, no network, file events): nothing global
# is used or changed. The image is the busybox test rootfs brought in with `podman import`.
# Host quirks: root lacks CAP_SYS_RESOURCE here, so default_ulimits stays at 4096; crun 1.x refuses
# this host's hybrid cgroup layout, so the crun round runs in a private mount namespace without
# /sys/fs/cgroup/unified (nothing outside changes).
# Steps per runtime (each prints PASS or FAIL; exit status 1 when any failed, 2 on a set-up error):
#   run --rm echo; stdin through the attach socket; tty; run -d + exec + exec exit code + logs
#   (stdout, stderr, partial line) + inspect + attach + kill + start + stop + rm; exit code 7;
#   OOM kill reported (137, OOMKilled=true); with $SWIFTLET_CRIU (Scripts/install-criu.sh) and not for
#   crun: container checkpoint + restore (a new monitor with --restore), and the process counts on.
# Knobs: PODMAN_TEST_RUNTIMES (default "swiftlet runc crun"), PODMAN_TEST_KEEP=1 keeps the temp dir.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
die() { echo "podman-test: error: $*" >&2; exit 2; }

MONITOR=${1:-${SWIFTLET_MONITOR:-$REPO/.build/debug/swiftlet-monitor}}
SWIFTLET=${2:-${SWIFTLET_BINARY:-$REPO/.build/debug/swiftlet}}
[ "$(id -u)" = 0 ] || die "run as root"
command -v podman >/dev/null || die "podman not found (Scripts/install-deps.sh installs it)"
[ -x "$MONITOR" ] || die "monitor not found: $MONITOR"
[ -x "$SWIFTLET" ] || die "swiftlet not found: $SWIFTLET"

# The crun round re-runs this script in a private mount namespace (see above).
if [ "${PODMAN_TEST_INNER:-}" = crun ]; then
    umount /sys/fs/cgroup/unified 2>/dev/null || true
fi

if [ -z "${PODMAN_TEST_DIR:-}" ]; then
    PODMAN_TEST_DIR=$(mktemp -d /tmp/swiftlet-podman.XXXXXX)
    export PODMAN_TEST_DIR
    OWN_DIR=1
fi
D=$PODMAN_TEST_DIR
cleanup() {
    [ "${OWN_DIR:-0}" = 1 ] || return 0
    podman rm -a -f -t 0 >/dev/null 2>&1
    if [ "${PODMAN_TEST_KEEP:-0}" = 1 ]; then echo "podman-test: kept $D"; return; fi
    # vfs layers are plain directories; podman removes its own storage first.
    podman system reset -f >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT

mkdir -p "$D"/{root,runroot,tmp}
cat >"$D/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$D/root"
runroot = "$D/runroot"
EOF
cat >"$D/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$D/events.log"
tmp_dir = "$D/tmp"
static_dir = "$D/root/libpod"
volume_path = "$D/root/volumes"
runtime_supports_json = ["crun", "runc", "swiftlet"]
EOF
export CONTAINERS_CONF=$D/containers.conf CONTAINERS_STORAGE_CONF=$D/storage.conf
IMG=localhost/swiftlet-busybox:latest

if [ "${OWN_DIR:-0}" = 1 ]; then
    ROOTFS=${SWIFTLET_ROOTFS:-$(bash "$HERE/make-rootfs.sh")} || die "make-rootfs.sh failed"
    tar -C "$ROOTFS" -cf "$D/rootfs.tar" . || die "tar of $ROOTFS failed"
    podman import --change 'CMD ["/bin/sh"]' "$D/rootfs.tar" "$IMG" >/dev/null 2>&1 || die "podman import failed"
    echo "# podman-test: podman $(podman --version | awk '{print $3}'), monitor $MONITOR ($("$MONITOR" --version | head -n 1))"
fi

FAIL=0
pass() { echo "PASS $RT_NAME: $1"; }
fail() { echo "FAIL $RT_NAME: $1"; FAIL=1; }
check() { # name expected-substring cmd...
    local name=$1 want=$2 out rc
    shift 2
    out=$(timeout 60 "$@" 2>&1); rc=$?
    if [ $rc -eq 0 ] && [[ $out == *"$want"* ]]; then pass "$name"; else fail "$name (rc=$rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
}
check_rc() { # name expected-rc cmd...
    local name=$1 want=$2 out rc
    shift 2
    out=$(timeout 60 "$@" 2>&1); rc=$?
    if [ $rc -eq "$want" ]; then pass "$name"; else fail "$name: rc $rc, want $want: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
}

round() { # runtime-name runtime-path
    RT_NAME=$1
    local rt=$2 n="t-$1-$$" out
    local P=(podman --cgroup-manager cgroupfs --conmon "$MONITOR" --runtime "$rt")
    check "run --rm echo" "hello-$$" "${P[@]}" run --rm "$IMG" echo "hello-$$"
    out=$(echo "via-stdin" | timeout 60 "${P[@]}" run -i --rm "$IMG" cat 2>&1)
    [ "$out" = via-stdin ] && pass "stdin through the attach socket" || fail "stdin through the attach socket: '$out'"
    check "tty" "/dev/pts/0" "${P[@]}" run --rm -t "$IMG" tty
    check "run -d" "" "${P[@]}" run -d --name "$n" "$IMG" sh -c 'echo out-line; echo err-line >&2; printf partial; sleep 600'
    check "exec" "exec-ok" "${P[@]}" exec "$n" sh -c 'echo exec-ok'
    check_rc "exec exit code" 5 "${P[@]}" exec "$n" sh -c 'exit 5'
    out=$(echo piped | timeout 60 "${P[@]}" exec -i "$n" cat 2>&1)
    [ "$out" = piped ] && pass "exec -i" || fail "exec -i: '$out'"
    sleep 0.5
    out=$(timeout 60 "${P[@]}" logs "$n" 2>&1)
    if [[ $out == *out-line* && $out == *err-line* && $out == *partial* ]]; then pass "logs"; else fail "logs: '$out'"; fi
    check "inspect running" "running" "${P[@]}" inspect -f '{{.State.Status}}' "$n"
    check "kill" "$n" "${P[@]}" kill "$n"
    check "exit code after kill" "137" "${P[@]}" wait "$n"
    check "start again" "$n" "${P[@]}" start "$n"
    check "stop" "$n" "${P[@]}" stop -t 1 "$n"
    check "rm" "$n" "${P[@]}" rm "$n"
    check_rc "exit code 7 propagated" 7 "${P[@]}" run --rm "$IMG" sh -c 'exit 7'
    "${P[@]}" run -d --name "$n-att" "$IMG" sh -c 'sleep 1; echo attached-out; exit 3' >/dev/null 2>&1
    check "attach" "attached-out" "${P[@]}" attach "$n-att"
    check "attach: exit code" "3" "${P[@]}" wait "$n-att"
    "${P[@]}" rm -f "$n-att" >/dev/null 2>&1
    if [ -n "${SWIFTLET_CRIU:-}" ] && [ "$RT_NAME" != crun ]; then
        # podman checkpoint/restore: the runtime's checkpoint, then a new monitor with --restore.
        "${P[@]}" run -d --name "$n-ck" "$IMG" sh -c 'i=0; while true; do echo count-$i; i=$((i+1)); sleep 0.1; done' >/dev/null 2>&1
        sleep 1
        check "container checkpoint" "$n-ck" env PATH="$(dirname "$SWIFTLET_CRIU"):$PATH" "${P[@]}" container checkpoint "$n-ck"
        check "checkpointed state" "exited" "${P[@]}" inspect -f '{{.State.Status}}' "$n-ck"
        before=$("${P[@]}" logs "$n-ck" 2>/dev/null | tail -n 1)
        check "container restore" "$n-ck" env PATH="$(dirname "$SWIFTLET_CRIU"):$PATH" "${P[@]}" container restore "$n-ck"
        check "restored and running" "running" "${P[@]}" inspect -f '{{.State.Status}}' "$n-ck"
        sleep 1
        after=$("${P[@]}" logs "$n-ck" 2>/dev/null | tail -n 1)
        if [ "${after#count-}" -gt "${before#count-}" ] 2>/dev/null; then pass "restored process counts on ($before -> $after)"
        else fail "restored process counts on: '$before' -> '$after'"; fi
        check "restored container stops" "$n-ck" "${P[@]}" stop -t 1 "$n-ck"
        check "restored exit code" "137" "${P[@]}" inspect -f '{{.State.ExitCode}}' "$n-ck"
        "${P[@]}" rm -f "$n-ck" >/dev/null 2>&1
    fi
    "${P[@]}" run -d --name "$n-oom" --memory 32m --memory-swap 32m "$IMG" sh -c 'tail /dev/zero' >/dev/null 2>&1
    timeout 60 "${P[@]}" wait "$n-oom" >/dev/null 2>&1
    check "OOM reported" "true 137" "${P[@]}" inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' "$n-oom"
    "${P[@]}" rm -f "$n-oom" >/dev/null 2>&1
}

if [ -n "${PODMAN_TEST_INNER:-}" ]; then
    round "$PODMAN_TEST_INNER" "$(command -v "$PODMAN_TEST_INNER")"
    exit $FAIL
fi

for r in ${PODMAN_TEST_RUNTIMES:-swiftlet runc crun}; do
    case $r in
        swiftlet) round swiftlet "$SWIFTLET" ;;
        runc) if command -v runc >/dev/null; then round runc "$(command -v runc)"; else echo "podman-test: runc not installed, skipped"; fi ;;
        crun)
            if command -v crun >/dev/null; then
                PODMAN_TEST_INNER=crun unshare -m --propagation private bash "$0" "$MONITOR" "$SWIFTLET" || FAIL=1
            else
                echo "podman-test: crun not installed, skipped"
            fi
            ;;
        *) die "unknown runtime $r" ;;
    esac
done
exit $FAIL
