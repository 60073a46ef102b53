#!/usr/bin/env bash
# podman-rootless-test.sh - rootless podman 4.3 (a normal user, subordinate id ranges, newuidmap from
# the `uidmap` package) with swiftlet as the runtime and swiftlet-monitor as its conmon, and runc as
# the runtime for comparison.
#
#   bash Scripts/podman-rootless-test.sh [MONITOR [SWIFTLET]]
#
# Run as root: it makes the user swiftlet-rl (useradd, with 65536 subordinate uids and gids) when
# missing and installs `uidmap` when newuidmap is missing, then runs podman as that user with
# everything in a temp dir it owns (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, XDG_RUNTIME_DIR; vfs
# storage, cgroupfs manager, no network, file events). On this host nothing delegates cgroups to the
# user, so the runtime skips them (Spec/cli.md, Rootless).
# Steps per runtime (each prints PASS or FAIL; exit status 1 when any failed, 2 on a set-up error):
#   run --rm (root in the container is the user outside); stdin; tty; run -d + exec + exec -t + exec
#   exit code + exec --user + logs + stop + rm; exit code. (podman 4.3 itself drops resource limits of rootless
#   containers on cgroup v1 with a warning, so the runtime's limit error is tested in RootlessTests.)
# Knobs: PODMAN_ROOTLESS_RUNTIMES (default "swiftlet runc"; runc is /opt/swiftlet-anchors/bin/runc
# when present, else /usr/sbin/runc), PODMAN_TEST_KEEP=1 keeps the temp dir.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
die() { echo "podman-rootless-test: error: $*" >&2; exit 2; }

MONITOR=${1:-${SWIFTLET_MONITOR:-$REPO/.build/debug/swiftlet-monitor}}
SWIFTLET=${2:-${SWIFTLET_BINARY:-$REPO/.build/debug/swiftlet}}
USER_NAME=swiftlet-rl
[ "$(id -u)" = 0 ] || die "run as root"
command -v podman >/dev/null || die "podman not found (Scripts/install-deps.sh installs it)"
[ -x "$MONITOR" ] || die "monitor not found: $MONITOR"
[ -x "$SWIFTLET" ] || die "swiftlet not found: $SWIFTLET"
if ! command -v newuidmap >/dev/null; then
    (apt-get install -y uidmap || { apt-get update && apt-get install -y uidmap; }) >/dev/null 2>&1 || die "apt-get install uidmap failed"
fi
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NAME" || die "useradd $USER_NAME failed"
grep -q "^$USER_NAME:" /etc/subuid || usermod --add-subuids 200000-265535 "$USER_NAME" || die "usermod --add-subuids"
grep -q "^$USER_NAME:" /etc/subgid || usermod --add-subgids 200000-265535 "$USER_NAME" || die "usermod --add-subgids"
for b in "$MONITOR" "$SWIFTLET"; do
    setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- test -x "$b" || die "$USER_NAME cannot run $b"
done

D=$(mktemp -d /tmp/swiftlet-podman-rootless.XXXXXX) || die "mktemp"
# podman as the user: its own ids and groups, a clean environment (an array, for `timeout`).
AS_USER=(setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin
    HOME="$(getent passwd "$USER_NAME" | cut -d: -f6)" USER="$USER_NAME" LOGNAME="$USER_NAME"
    XDG_RUNTIME_DIR="$D/xdg" CONTAINERS_CONF="$D/containers.conf" CONTAINERS_STORAGE_CONF="$D/storage.conf")
as_user() { "${AS_USER[@]}" "$@"; }
cleanup() {
    as_user podman rm -a -f -t 0 >/dev/null 2>&1
    if [ "${PODMAN_TEST_KEEP:-0}" = 1 ]; then echo "podman-rootless-test: kept $D"; return; fi
    # vfs layers belong to subordinate ids: podman removes its own storage (in its user namespace).
    as_user podman system reset -f >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT
mkdir -p "$D"/{root,runroot,tmp,xdg}
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
# A fresh rootfs of its own: the shared one ($SWIFTLET_ROOTFS) collects mount points the XCTest run
# made, some owned by ids outside the user's subordinate range, which podman cannot unpack.
ROOTFS=$(bash "$HERE/make-rootfs.sh" "$D/rootfs") || die "make-rootfs.sh failed"
tar -C "$ROOTFS" -cf "$D/rootfs.tar" . || die "tar of $ROOTFS failed"
rm -rf "$D/rootfs"
chown -R "$USER_NAME:" "$D" && chmod 700 "$D" "$D/xdg" || die "chown $D"

IMG=localhost/swiftlet-busybox:latest
as_user podman import --change 'CMD ["/bin/sh"]' "$D/rootfs.tar" "$IMG" >"$D/import.log" 2>&1 ||
    die "podman import (as $USER_NAME) failed: $(tail -n 3 "$D/import.log")"
USER_UID=$(id -u "$USER_NAME")
echo "# podman-rootless-test: podman $(podman --version | awk '{print $3}') as $USER_NAME ($USER_UID), monitor $MONITOR"

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
    local rt=$2 n="rl-$1-$$" out
    local P=("${AS_USER[@]}" podman --cgroup-manager cgroupfs --conmon "$MONITOR" --runtime "$rt")
    # Root in the container is the user outside; the rest of the user namespace its subordinate ids.
    check "run --rm" "0 $USER_UID 1" "${P[@]}" run --rm "$IMG" sh -c 'echo $(head -n 1 /proc/self/uid_map)'
    out=$(echo via-stdin | timeout 60 "${P[@]}" run -i --rm "$IMG" cat 2>&1)
    [ "$out" = via-stdin ] && pass "stdin through the attach socket" || fail "stdin through the attach socket: '$out'"
    check "tty" "/dev/pts/0" "${P[@]}" run --rm -t "$IMG" tty
    check "run -d" "" "${P[@]}" run -d --name "$n" "$IMG" sh -c 'echo out-line; echo err-line >&2; sleep 600'
    check "exec -t" "/dev/pts/" "${P[@]}" exec -t "$n" tty
    check "exec" "exec-ok" "${P[@]}" exec "$n" sh -c 'echo exec-ok'
    check_rc "exec exit code" 5 "${P[@]}" exec "$n" sh -c 'exit 5'
    check "exec --user" "1000" "${P[@]}" exec --user 1000 "$n" id -u
    sleep 0.5
    out=$(timeout 60 "${P[@]}" logs "$n" 2>&1)
    if [[ $out == *out-line* && $out == *err-line* ]]; then pass "logs"; else fail "logs: '$out'"; fi
    check "inspect running" "running" "${P[@]}" inspect -f '{{.State.Status}}' "$n"
    check "stop" "$n" "${P[@]}" stop -t 1 "$n"
    check "inspect exited" "exited" "${P[@]}" inspect -f '{{.State.Status}}' "$n"
    check "rm" "$n" "${P[@]}" rm "$n"
    check_rc "exit code 7 propagated" 7 "${P[@]}" run --rm "$IMG" sh -c 'exit 7'
}

RUNC=/opt/swiftlet-anchors/bin/runc
[ -x "$RUNC" ] || RUNC=/usr/sbin/runc
for rt in ${PODMAN_ROOTLESS_RUNTIMES:-swiftlet runc}; do
    case $rt in
    swiftlet) round swiftlet "$SWIFTLET" ;;
    runc) round runc "$RUNC" ;;
    *) die "unknown runtime $rt" ;;
    esac
done
exit $FAIL
