#!/usr/bin/env bash
# systemd-clients.sh - real clients with the systemd cgroup driver, where systemd is PID 1: podman
# with a systemd host's defaults (cgroup_manager = "systemd", journald events and container logs)
# using swiftlet + swiftlet-monitor, and containerd 1.6 through containerd-shim-runc-v2 with the
# runc options BinaryName = swiftlet and SystemdCgroup = true (what CRI's `SystemdCgroup = true`
# passes to the shim; ctr sets them with --runc-binary and --runc-systemd-cgroup).
#
#   bash Scripts/vm/systemd-clients.sh [MONITOR [SWIFTLET]]
#
# Runs in the VM of `Scripts/vm-test.sh --systemd` (Scripts/test.sh's systemd lane runs it after the
# XCTest classes). MONITOR / SWIFTLET default to $SWIFTLET_MONITOR / $SWIFTLET_BINARY. Everything
# lives in a temp dir (podman's storage and containers.conf, containerd's root, state and socket);
# journald is started if it is not running (the VM boots only what its command needs).
# Steps (each prints PASS or FAIL; exit status 1 when any failed, 2 on a set-up error):
#   podman: run -d: the container's scope libpod-ID.scope active in machine.slice with
#   init in it; exec; logs (read back from journald); journalctl CONTAINER_NAME=; stop; rm: scope gone.
#   containerd: run -d with cgroupsPath system.slice:swiftlet-ctr:ID: scope active, init in it;
#   task exec; task kill; task rm + container rm: scope gone. (The host lanes, podman-test.sh and
#   containerd-smoke.sh, cover the rest of both clients; under TCG every step here costs seconds.)
#   our shim (containerd-shim-swiftlet-v2, SystemdCgroup from an options file): run -d: scope active,
#   init in it; task metrics with v2 numbers; state under the options' Root; kill, rm: scope gone.
#   rootless podman (the user swiftlet-rl, made with subordinate ids when missing, `loginctl
#   enable-linger`; cgroup_manager = "systemd"), with swiftlet-monitor + swiftlet, then conmon + runc
#   as the control: run -d: libpod-ID.scope active in user@UID.service's user.slice with init in it;
#   exec; logs; stop; rm: scope gone.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
die() { echo "systemd-clients: error: $*" >&2; exit 2; }

MONITOR=${1:-${SWIFTLET_MONITOR:-$REPO/.build/test-bin/swiftlet-monitor}}
SWIFTLET=${2:-${SWIFTLET_BINARY:-$REPO/.build/test-bin/swiftlet}}
ROOTFS=${SWIFTLET_ROOTFS:?set SWIFTLET_ROOTFS}
[ "$(id -u)" = 0 ] || die "run as root"
[ -d /run/systemd/system ] || die "systemd is not PID 1 here (run it with Scripts/vm-test.sh --systemd)"
for c in podman containerd ctr systemctl journalctl; do command -v "$c" >/dev/null || die "$c not found"; done
[ -x "$MONITOR" ] || die "monitor not found: $MONITOR"
[ -x "$SWIFTLET" ] || die "swiftlet not found: $SWIFTLET"
systemctl start systemd-journald.socket systemd-journald.service || die "cannot start systemd-journald"

D=$(mktemp -d /tmp/swiftlet-sdc.XXXXXX) # short: containerd's socket path is limited to 108 bytes
DAEMON=
# shellcheck disable=SC2317 # (run by the EXIT trap)
cleanup() {
    podman rm -a -f -t 0 >/dev/null 2>&1
    podman system reset -f >/dev/null 2>&1
    if [ -n "$DAEMON" ]; then
        for c in $(ctr --address "$D/c.sock" -n sdc task ls -q 2>/dev/null); do
            ctr --address "$D/c.sock" -n sdc task rm -f "$c" >/dev/null 2>&1
        done
        kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null
    fi
    awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf --one-file-system "$D"
}
trap cleanup EXIT

FAIL=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; FAIL=1; }
check() { # NAME EXPECTED-SUBSTRING CMD...: CMD exits 0 and prints EXPECTED
    local name=$1 want=$2 out rc
    shift 2
    out=$(timeout 120 "$@" 2>&1); rc=$?
    if [ $rc -eq 0 ] && [[ $out == *"$want"* ]]; then pass "$name"; else fail "$name (rc=$rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
}
unit_prop() { systemctl show "$1" -p "$2" --value 2>/dev/null; }
# check_scope NAME UNIT CGROUP PID: the unit is active, its cgroup is CGROUP and PID is in it
check_scope() {
    local state cg
    state=$(unit_prop "$2" ActiveState) cg=$(unit_prop "$2" ControlGroup)
    if [ "$state" = active ] && [ "$cg" = "$3" ] && [ "$(cat "/proc/$4/cgroup" 2>/dev/null)" = "0::$3" ]; then pass "$1"
    else fail "$1: $2 is '$state' at '$cg'; pid $4 in '$(cat "/proc/$4/cgroup" 2>/dev/null)'"; fi
}
check_gone() { # NAME UNIT
    local s
    for _ in $(seq 100); do s=$(unit_prop "$2" LoadState); [ "$s" = not-found ] && break; sleep 0.1; done
    if [ "$s" = not-found ]; then pass "$1"; else fail "$1: $2 is still $s ($(unit_prop "$2" ActiveState))"; fi
}

# ------------------------------------------------------------------------------------------ podman
mkdir -p "$D"/{root,runroot,tmp}
cat >"$D/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$D/root"
runroot = "$D/runroot"
EOF
cat >"$D/containers.conf" <<EOF
[containers]
log_driver = "journald"
netns = "none"
[engine]
cgroup_manager = "systemd"
events_logger = "journald"
tmp_dir = "$D/tmp"
static_dir = "$D/root/libpod"
volume_path = "$D/root/volumes"
runtime_supports_json = ["swiftlet"]
EOF
export CONTAINERS_CONF=$D/containers.conf CONTAINERS_STORAGE_CONF=$D/storage.conf
IMG=localhost/swiftlet-busybox:latest
tar -C "$ROOTFS" -cf "$D/rootfs.tar" . || die "tar of $ROOTFS failed"
podman import --change 'CMD ["/bin/sh"]' "$D/rootfs.tar" "$IMG" >/dev/null 2>&1 || die "podman import failed"
rm -f "$D/rootfs.tar"
echo "# systemd-clients: podman $(podman --version | awk '{print $3}') (cgroup manager $(podman info -f '{{.Host.CgroupManager}}')), swiftlet-monitor + swiftlet"

P=(podman --conmon "$MONITOR" --runtime "$SWIFTLET")
n=sdc-$$
check "podman run -d" "" "${P[@]}" run -d --name "$n" "$IMG" sh -c 'echo out-line; echo err-line >&2; sleep 600'
cid=$("${P[@]}" inspect -f '{{.Id}}' "$n" 2>/dev/null)
pid=$("${P[@]}" inspect -f '{{.State.Pid}}' "$n" 2>/dev/null)
check_scope "podman: the container's scope" "libpod-$cid.scope" "/machine.slice/libpod-$cid.scope" "${pid:-0}"
check "podman exec" "exec-ok" "${P[@]}" exec "$n" sh -c 'echo exec-ok'
for _ in $(seq 50); do "${P[@]}" logs "$n" 2>&1 | grep -q err-line && break; sleep 0.1; done
out=$(timeout 60 "${P[@]}" logs "$n" 2>&1)
if [[ $out == *out-line* && $out == *err-line* ]]; then pass "podman logs (journald)"; else fail "podman logs (journald): '$out'"; fi
check "journalctl CONTAINER_NAME=$n" "out-line" journalctl --no-pager -o cat "CONTAINER_NAME=$n"
check "podman stop" "$n" "${P[@]}" stop -t 1 "$n"
check "podman: stopped" "exited" "${P[@]}" inspect -f '{{.State.Status}}' "$n"
check "podman rm" "$n" "${P[@]}" rm "$n"
check_gone "podman: scope gone after rm" "libpod-$cid.scope"

# -------------------------------------------------------------------------------------- containerd
cat >"$D/config.toml" <<EOF
version = 2
root = "$D/croot"
state = "$D/cstate"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/c.sock"
[ttrpc]
  address = "$D/c.sock.ttrpc"
EOF
setsid containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 </dev/null &
DAEMON=$!
for _ in $(seq 300); do ctr --address "$D/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$D/c.sock" version >/dev/null 2>&1 || { tail -n 20 "$D/containerd.log" >&2; die "containerd did not come up"; }
echo "# systemd-clients: containerd $(containerd --version | awk '{print $3}'), containerd-shim-runc-v2, SystemdCgroup + BinaryName=swiftlet"
CTR=(timeout -k 5 120 ctr --address "$D/c.sock" -n sdc)
id=ctr-$$ unit=swiftlet-ctr-ctr-$$.scope
RUN=(run --rootfs --runc-binary "$SWIFTLET" --runc-systemd-cgroup --runc-root "$D/runc-root")
check "ctr run -d (systemd cgroup)" "" "${CTR[@]}" "${RUN[@]}" --cgroup "system.slice:swiftlet-ctr:$id" -d "$ROOTFS" "$id" sleep 600
pid=$("${CTR[@]}" task ls 2>/dev/null | awk -v id="$id" '$1 == id { print $2 }')
check_scope "containerd: the container's scope" "$unit" "/system.slice/$unit" "${pid:-0}"
check "ctr task exec" "inside" "${CTR[@]}" task exec --exec-id e1 "$id" echo inside
check "ctr task kill" "" "${CTR[@]}" task kill -s KILL "$id"
for _ in $(seq 100); do "${CTR[@]}" task ls 2>/dev/null | grep -q "^$id .*STOPPED" && break; sleep 0.1; done
check "ctr task rm" "" "${CTR[@]}" task rm "$id"
check "ctr container rm" "" "${CTR[@]}" container rm "$id"
check_gone "containerd: scope gone after task rm" "$unit"

# ------------------------------------------------------------ containerd + containerd-shim-swiftlet-v2
# Our shim (swiftlet-monitor under the name containerd maps `runtime_type = "io.containerd.swiftlet.v2"`
# to, on the PATH of a containerd of this section's own) with runc's options as a CRI handler's
# ConfigPath passes them (runtimeoptions.v1.Options; ctr: --runtime-config-path): a TOML file with
# BinaryName = swiftlet, Root and SystemdCgroup = true. The container's scope is active with init in
# it; `ctr task metrics` shows cgroup v2 numbers (pids.current >= 1, memory.usage > 0); the state is
# under the options' Root; the scope is gone after rm.
S=$D/shim
mkdir -p "$S/bin"
cp "$MONITOR" "$S/bin/containerd-shim-swiftlet-v2" || die "cannot copy $MONITOR"
printf 'BinaryName = "%s"\nRoot = "%s"\nSystemdCgroup = true\n' "$SWIFTLET" "$S/root" >"$S/options.toml"
printf '%s\n' 'version = 2' "root = \"$S/croot\"" "state = \"$S/cstate\"" \
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \"$S/c.sock\"" \
    '[ttrpc]' "  address = \"$S/c.sock.ttrpc\"" >"$S/config.toml"
PATH=$S/bin:$PATH setsid containerd --config "$S/config.toml" >"$S/containerd.log" 2>&1 </dev/null &
SHIM_DAEMON=$!
# shellcheck disable=SC2317 # (run by the EXIT trap)
shim_cleanup() {
    for c in $(ctr --address "$S/c.sock" -n sdc task ls -q 2>/dev/null); do
        ctr --address "$S/c.sock" -n sdc task rm -f "$c" >/dev/null 2>&1
    done
    kill "$SHIM_DAEMON" 2>/dev/null; wait "$SHIM_DAEMON" 2>/dev/null
    cleanup
}
trap shim_cleanup EXIT
for _ in $(seq 300); do ctr --address "$S/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$S/c.sock" version >/dev/null 2>&1 || { tail -n 20 "$S/containerd.log" >&2; die "containerd (our shim) did not come up"; }
echo "# systemd-clients: containerd-shim-swiftlet-v2, options file with SystemdCgroup + BinaryName=swiftlet"
SCTR=(timeout -k 5 120 ctr --address "$S/c.sock" -n sdc)
id=shim-$$ unit=swiftlet-shim-shim-$$.scope
check "ctr run -d (our shim, systemd cgroup from the options file)" "" "${SCTR[@]}" run --rootfs \
    --runtime io.containerd.swiftlet.v2 --runtime-config-path "$S/options.toml" \
    --cgroup "system.slice:swiftlet-shim:$id" -d "$ROOTFS" "$id" sleep 600
pid=$("${SCTR[@]}" task ls 2>/dev/null | awk -v id="$id" '$1 == id { print $2 }')
check_scope "our shim: the container's scope" "$unit" "/system.slice/$unit" "${pid:-0}"
metrics=$("${SCTR[@]}" task metrics "$id" 2>&1)
metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$metrics"; }
pids=$(metric pids.current) mem=$(metric memory.usage) usec=$(metric cpu.usage_usec)
if [ "${pids:-0}" -ge 1 ] && [ "${mem:-0}" -gt 0 ] && [ -n "$usec" ]; then
    pass "ctr task metrics (v2): pids.current=$pids memory.usage=$mem cpu.usage_usec=$usec"
else fail "ctr task metrics (v2): $(tr '\n' ' ' <<<"$metrics")"; fi
if [ -d "$S/root/sdc/$id" ]; then pass "our shim: state under the options' Root"
else fail "our shim: no state at $S/root/sdc/$id: $(ls -R "$S/root" 2>&1 | head -n 5 | tr '\n' ' ')"; fi
check "ctr task kill (our shim)" "" "${SCTR[@]}" task kill -s KILL "$id"
for _ in $(seq 100); do "${SCTR[@]}" task ls 2>/dev/null | grep -q "^$id .*STOPPED" && break; sleep 0.1; done
check "ctr task rm (our shim)" "" "${SCTR[@]}" task rm "$id"
check "ctr container rm (our shim)" "" "${SCTR[@]}" container rm "$id"
check_gone "our shim: scope gone after rm" "$unit"

# ---------------------------------------------------------------- rootless podman, user instance
# A normal user with subordinate ids and `loginctl enable-linger` (user@UID.service and its bus);
# podman as that user with the systemd cgroup manager (podman's default here): the runtime, root
# in podman's user namespace, makes the container's scope in the user instance over the user bus
# (swiftlet-monitor passes -s as --systemd-cgroup). runc with conmon is the control.
rootless_podman() {
    local user=swiftlet-rl uid gid xdg ok=1 rt img=localhost/swiftlet-busybox:latest
    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user" || { fail "rootless: useradd $user"; return; }
    grep -q "^$user:" /etc/subuid || usermod --add-subuids 200000-265535 "$user" || ok=0
    grep -q "^$user:" /etc/subgid || usermod --add-subgids 200000-265535 "$user" || ok=0
    [ $ok = 1 ] && command -v newuidmap >/dev/null || { fail "rootless: subordinate ids or newuidmap (uidmap) missing"; return; }
    uid=$(id -u "$user") gid=$(id -g "$user") xdg=/run/user/$(id -u "$user")
    timeout 120 loginctl enable-linger "$user" || { fail "rootless: loginctl enable-linger $user"; return; }
    for _ in $(seq 360); do
        systemctl is-active -q "user@$uid.service" && [ -S "$xdg/bus" ] && break
        sleep 0.5
    done
    systemctl is-active -q "user@$uid.service" || { fail "rootless: user@$uid.service not active"; return; }
    # Its own directory: $D is root's 0700.
    R=$(mktemp -d /tmp/swiftlet-sdc-rl.XXXXXX) || { fail "rootless: mktemp"; return; }
    mkdir -p "$R"/{root,runroot,tmp}
    cat >"$R/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$R/root"
runroot = "$R/runroot"
CONF
    cat >"$R/containers.conf" <<CONF
[containers]
log_driver = "k8s-file"
netns = "none"
[engine]
cgroup_manager = "systemd"
events_logger = "file"
events_logfile_path = "$R/events.log"
tmp_dir = "$R/tmp"
static_dir = "$R/root/libpod"
volume_path = "$R/root/volumes"
runtime_supports_json = ["swiftlet", "runc"]
CONF
    # A fresh rootfs (as podman-rootless-test.sh: every file within the user's id range).
    bash "$REPO/Scripts/make-rootfs.sh" "$R/rootfs" >/dev/null && tar -C "$R/rootfs" -cf "$R/rootfs.tar" . &&
        rm -rf "$R/rootfs" || { fail "rootless: make-rootfs.sh"; return; }
    chown -R "$uid:$gid" "$R" && chmod 700 "$R" || { fail "rootless: chown $R"; return; }
    AS=(setpriv --reuid="$uid" --regid="$gid" --init-groups -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin
        HOME="$(getent passwd "$user" | cut -d: -f6)" USER="$user" LOGNAME="$user" XDG_RUNTIME_DIR="$xdg"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$xdg/bus" CONTAINERS_CONF="$R/containers.conf"
        CONTAINERS_STORAGE_CONF="$R/storage.conf")
    timeout 300 "${AS[@]}" podman import --change 'CMD ["/bin/sh"]' "$R/rootfs.tar" "$img" >"$R/import.log" 2>&1 ||
        { fail "rootless: podman import: $(tail -n 3 "$R/import.log" | tr '\n' ' ')"; return; }
    echo "# systemd-clients: rootless podman as $user ($uid), cgroup manager $("${AS[@]}" podman info -f '{{.Host.CgroupManager}}' 2>&1)"
    local runc=/opt/swiftlet-anchors/bin/runc conmon
    [ -x "$runc" ] || runc=/usr/sbin/runc
    conmon=$(command -v conmon || echo "$MONITOR")
    for rt in swiftlet runc; do
        local P n=rl-$rt-$$ cid pid unit cg state
        if [ $rt = swiftlet ]; then P=("${AS[@]}" podman --conmon "$MONITOR" --runtime "$SWIFTLET")
        else P=("${AS[@]}" podman --conmon "$conmon" --runtime "$runc"); fi
        check "rootless $rt: podman run -d" "" "${P[@]}" run -d --name "$n" "$img" sh -c 'echo out-line; echo err-line >&2; sleep 600'
        read -r cid pid < <("${P[@]}" inspect -f '{{.Id}} {{.State.Pid}}' "$n" 2>/dev/null)
        unit=libpod-$cid.scope cg=/user.slice/user-$uid.slice/user@$uid.service/user.slice/libpod-$cid.scope
        state=$("${AS[@]}" systemctl --user show "$unit" -p ActiveState --value 2>&1)
        if [ "$state" = active ] && [ "$(cat "/proc/${pid:-0}/cgroup" 2>/dev/null)" = "0::$cg" ] &&
            [ "$("${AS[@]}" systemctl --user show "$unit" -p ControlGroup --value 2>&1)" = "$cg" ]; then
            pass "rootless $rt: the container's scope in user@$uid.service"
        else fail "rootless $rt: $unit is '$state'; pid ${pid:-?} in '$(cat "/proc/${pid:-0}/cgroup" 2>/dev/null)'"; fi
        check "rootless $rt: podman exec" "exec-ok" "${P[@]}" exec "$n" sh -c 'echo exec-ok'
        for _ in $(seq 50); do "${P[@]}" logs "$n" 2>&1 | grep -q err-line && break; sleep 0.1; done
        check "rootless $rt: podman logs" "err-line" "${P[@]}" logs "$n"
        check "rootless $rt: podman stop" "$n" "${P[@]}" stop -t 1 "$n"
        check "rootless $rt: podman rm" "$n" "${P[@]}" rm "$n"
        for _ in $(seq 100); do
            state=$("${AS[@]}" systemctl --user show "$unit" -p LoadState --value 2>&1)
            [ "$state" = not-found ] && break
            sleep 0.1
        done
        if [ "$state" = not-found ] && [ ! -e "/sys/fs/cgroup$cg" ]; then pass "rootless $rt: scope gone after rm"
        else fail "rootless $rt: $unit is still $state"; fi
    done
}
R= AS=() # the rootless section's directory and its command prefix (podman as the user)
# shellcheck disable=SC2317 # (run by the EXIT trap)
cleanup_rootless() {
    [ -n "$R" ] || return 0
    if [ ${#AS[@]} -gt 0 ]; then
        timeout 120 "${AS[@]}" podman rm -a -f -t 0 >/dev/null 2>&1
        timeout 120 "${AS[@]}" podman system reset -f >/dev/null 2>&1
    fi
    rm -rf --one-file-system "$R"
}
# After the exit trap set so far (the other sections' clean-up).
PREV_EXIT=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT\$/\1/")
# shellcheck disable=SC2064 # (expanded now: the trap so far)
trap "cleanup_rootless; ${PREV_EXIT:-:}" EXIT
rootless_podman

[ "$FAIL" = 0 ] && echo "systemd-clients: all steps passed" || echo "systemd-clients: FAILED"
exit "$FAIL"
