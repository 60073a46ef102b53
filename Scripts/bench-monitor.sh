#!/usr/bin/env bash
# bench-monitor.sh - swiftlet-monitor side by side with conmon, in one run (Scripts/bench.sh calls it).
#
#   bash Scripts/bench-monitor.sh
#
# Environment (all optional):
#   MONITOR=PATH  swiftlet-monitor; SWIFTLET=PATH  swiftlet (unset: both from `Scripts/build.sh release`)
#   CONMON=PATH   default `command -v conmon`;  RUNC=PATH default `command -v runc`;  CRUN likewise
#   LAUNCHES=20   paired launch rounds;  IDLE=60 seconds of idle watching;  PROBE_SECS=60
#
# Both monitors drive the same runtime (swiftlet), launched as podman launches conmon (sync pipe in
# _OCI_SYNCPIPE, --api-version 1, exit dir, k8s-file log, `runtime start` by the caller):
# 1. launch latency, paired and alternating: launch -> launcher exited, -> pid on the sync pipe
#    (created), -> `start` returned (running); medians (p25-p75) and the swiftlet-monitor/conmon ratio.
# 2. idle footprint while the container sleeps, with two monitors of each kind running (so the
#    binary's pages are shared as on a node): VmRSS, private memory (Private_Clean + Private_Dirty of
#    /proc/PID/smaps_rollup: what each extra container costs), threads, CPU ticks and context switches
#    (voluntary = wakeups) over IDLE seconds.
# 3. exec probes once per second for PROBE_SECS: CPU (user+sys, children included) of the monitor
#    running an exec probe through its control socket, against a shell running `runc exec ID true`
#    (and `crun exec`, `swiftlet exec`) once per second. Target: monitor <= 1/3 of runc exec.
# Needs root, conmon (apt-get install conmon), python3 (for the control socket client).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench-stats.sh
. "$HERE/bench-stats.sh"
LAUNCHES=${LAUNCHES:-20} IDLE=${IDLE:-60} PROBE_SECS=${PROBE_SECS:-60}
die() { echo "bench-monitor: error: $*" >&2; exit 1; }
note() { echo "bench-monitor: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root"

if [ -z "${MONITOR:-}" ] || [ -z "${SWIFTLET:-}" ]; then
    note "building swiftlet and swiftlet-monitor (release)..."
    BIN=$(bash "$HERE/build.sh" release 2>/tmp/swiftlet-bench-build.log) || die "release build failed (/tmp/swiftlet-bench-build.log)"
    SWIFTLET=${SWIFTLET:-$BIN}
    MONITOR=${MONITOR:-$(dirname "$BIN")/swiftlet-monitor}
fi
CONMON=${CONMON:-$(command -v conmon || true)}
[ -n "$CONMON" ] || die "conmon not found (apt-get install conmon)"
RUNC=${RUNC:-$(command -v runc || true)}
CRUN=${CRUN:-$(command -v crun || true)}
ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"

WORK=$(mktemp -d /tmp/swiftlet-bench-monitor.XXXXXX)
STATE=$WORK/state
IDS=()
cleanup() {
    local id
    for id in "${IDS[@]}"; do "$SWIFTLET" --root "$STATE" delete --force "$id" >/dev/null 2>&1 || true; done
    [ -n "$RUNC" ] && "$RUNC" --root "$WORK/runc-state" delete --force "bm-runc-$$" >/dev/null 2>&1
    [ -n "$CRUN" ] && "$CRUN" --root "$WORK/crun-state" delete --force "bm-crun-$$" >/dev/null 2>&1
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

bundle() { # DIR ARGS-JSON
    mkdir -p "$1"
    "$SWIFTLET" spec --bundle "$1" 2>/dev/null || (cd "$1" && "$SWIFTLET" spec)
    python3 - "$1/config.json" "$ROOTFS" "$2" <<'EOF'
import json, sys
p, root, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = json.load(open(p))
c["root"] = {"path": root, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(p, "w"))
EOF
}

# launch NAME MONITOR-BIN ID -> L_PARENT L_CREATED L_RUNNING (us), MPID
launch() {
    local name=$1 mon=$2 id=$3 d=$WORK/c/$3 t0 t1 t2 t3 line
    mkdir -p "$d/exits"
    bundle "$d/bundle" '["sleep","100000"]' >/dev/null
    mkfifo "$d/sync"
    exec 3<>"$d/sync"
    IDS+=("$id")
    t0=${EPOCHREALTIME/./}
    _OCI_SYNCPIPE=3 "$mon" --api-version 1 -c "$id" -u "$id" -n "$id" -r "$SWIFTLET" -b "$d/bundle" \
        -p "$d/ctr.pid" -P "$d/mon.pid" --exit-dir "$d/exits" -l "k8s-file:$d/ctr.log" --full-attach \
        --runtime-arg "--root=$STATE" </dev/null >/dev/null 2>&1
    t1=${EPOCHREALTIME/./}
    read -r -t 20 line <&3 || { exec 3>&-; die "$name: no answer on the sync pipe"; }
    t2=${EPOCHREALTIME/./}
    exec 3>&-
    [[ $line == *'"data":'* || $line == *'"data": '* ]] && [[ $line != *-1* ]] || die "$name: create failed: $line"
    "$SWIFTLET" --root "$STATE" start "$id" || die "$name: start failed"
    t3=${EPOCHREALTIME/./}
    MPID=$(cat "$d/mon.pid")
    L_PARENT=$((t1 - t0)) L_CREATED=$((t2 - t0)) L_RUNNING=$((t3 - t0))
}
stop() { # ID
    local d=$WORK/c/$1
    "$SWIFTLET" --root "$STATE" kill "$1" KILL >/dev/null 2>&1 || true
    for _ in $(seq 1 500); do [ -s "$d/exits/$1" ] && break; sleep 0.01; done
    "$SWIFTLET" --root "$STATE" delete --force "$1" >/dev/null 2>&1 || true
}
# BENCH_MONITOR_OUT=FILE (set by bench.sh): "key value" lines for its JSON results
kv() { [ -z "${BENCH_MONITOR_OUT:-}" ] || echo "$1 $2" >>"$BENCH_MONITOR_OUT"; }

echo "# bench-monitor $(date -u +%FT%TZ) kernel=$(uname -r) runtime=$SWIFTLET"
echo "# swiftlet-monitor: $MONITOR; conmon: $CONMON ($("$CONMON" --version | head -n 1))"

# --- 1. launch latency ----------------------------------------------------------------------------
NAMES=(swiftlet-monitor conmon) BINS=("$MONITOR" "$CONMON")
for ((r = 0; r < LAUNCHES + 1; r++)); do
    for ((j = 0; j < 2; j++)); do
        i=$(((r + j) % 2)) id="bm-$$-$r-$i"
        launch "${NAMES[$i]}" "${BINS[$i]}" "$id"
        stop "$id"
        [ $r = 0 ] && continue # warm-up
        echo $L_PARENT >>"$WORK/parent.$i"; echo $L_CREATED >>"$WORK/created.$i"; echo $L_RUNNING >>"$WORK/running.$i"
        eval "R_$i=$L_RUNNING"
    done
    [ $r = 0 ] || awk -v a="$R_0" -v b="$R_1" 'BEGIN { printf "%.4f\n", a / b }' >>"$WORK/ratio"
done
echo
echo "launch latency [ms], median (p25-p75) of $LAUNCHES paired rounds"
printf '  %-18s %-22s %-22s %s\n' monitor "launcher exited" "created (sync pipe)" "running (after start)"
for i in 0 1; do
    printf '  %-18s %-22s %-22s %s\n' "${NAMES[$i]}" "$(stats "$WORK/parent.$i" 1000 2)" \
        "$(stats "$WORK/created.$i" 1000 2)" "$(stats "$WORK/running.$i" 1000 2)"
done
echo "  launch-to-running ratio swiftlet-monitor/conmon: $(stats "$WORK/ratio" 1 3)"
for i in 0 1; do kv "${NAMES[$i]}.launch_to_running_ms" "$(stats "$WORK/running.$i" 1000 2 | cut -d' ' -f1)"; done
kv "ratio.launch_to_running" "$(stats "$WORK/ratio" 1 3 | cut -d' ' -f1)"

# --- 2. idle footprint ----------------------------------------------------------------------------
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cswitch() { awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v, n }' "/proc/$1/status"; }
private_kib() { awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' "/proc/$1/smaps_rollup"; }
field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# Two containers per monitor: on a node the binary's text and clean data are shared by every monitor,
# so the second one shows what each extra container costs.
declare -A MP
for i in 0 1; do
    launch "${NAMES[$i]}" "${BINS[$i]}" "bm-idle2-$$-$i"
    launch "${NAMES[$i]}" "${BINS[$i]}" "bm-idle-$$-$i"
    MP[$i]=$MPID
done
sleep 1
declare -A T0 C0
for i in 0 1; do T0[$i]=$(ticks "${MP[$i]}"); C0[$i]=$(cswitch "${MP[$i]}"); done
note "watching both idle monitors for ${IDLE}s..."
sleep "$IDLE"
echo
echo "idle monitor with a sleeping container, over ${IDLE}s (two monitors of each kind running)"
printf '  %-18s %-10s %-14s %-10s %-8s %-10s %s\n' monitor "VmRSS" "private (USS)" "Pss" threads "CPU ticks" "ctx switches vol/invol"
for i in 0 1; do
    p=${MP[$i]}
    read -r v1 n1 <<<"$(cswitch "$p")"
    read -r v0 n0 <<<"${C0[$i]}"
    pss=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")
    printf '  %-18s %-10s %-14s %-10s %-8s %-10s %s\n' "${NAMES[$i]}" "$(field "$p" VmRSS) KiB" "$(private_kib "$p") KiB" \
        "$pss KiB" "$(field "$p" Threads)" "$(($(ticks "$p") - T0[$i]))" "$((v1 - v0))/$((n1 - n0))"
    kv "${NAMES[$i]}.private_kib" "$(private_kib "$p")"; kv "${NAMES[$i]}.vmrss_kib" "$(field "$p" VmRSS)"
    kv "${NAMES[$i]}.threads" "$(field "$p" Threads)"; kv "${NAMES[$i]}.idle_wakeups" "$((v1 - v0))"
    kv "${NAMES[$i]}.idle_secs" "$IDLE"
done

# --- 3. exec probe CPU ----------------------------------------------------------------------------
cpu_children() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }   # utime stime cutime cstime
HZ=$(getconf CLK_TCK)
d=$WORK/c/bm-idle-$$-0
note "exec probe through swiftlet-monitor once per second for ${PROBE_SECS}s..."
c0=$(cpu_children "${MP[0]}")
python3 - "$d/bundle/monitor.sock" "$PROBE_SECS" <<'EOF'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"id": 1, "method": "addProbe", "params": {"name": "bench", "exec": {"command": ["true"]},
          "periodSeconds": 1, "timeoutSeconds": 5}}).encode() + b"\n")
time.sleep(int(sys.argv[2]) + 0.5)
s.sendall(json.dumps({"id": 2, "method": "state"}).encode() + b"\n")
buf = b""
while buf.count(b"\n") < 2: buf += s.recv(65536)
state = [json.loads(l) for l in buf.split(b"\n") if l.startswith(b'{"id":2')][0]["result"]
print("probe runs:", state["probes"][0]["runs"], file=sys.stderr)
s.sendall(json.dumps({"id": 3, "method": "removeProbe", "params": {"name": "bench"}}).encode() + b"\n")
EOF
c1=$(cpu_children "${MP[0]}")
MON_MS=$(((c1 - c0) * 1000 / HZ))

exec_loop() { # NAME CMD... : CPU ms (children) of running CMD once per second for PROBE_SECS
    local t
    t=$( { /usr/bin/time -f "%U %S" bash -c 'for ((i = 0; i < '"$PROBE_SECS"'; i++)); do "$@" >/dev/null 2>&1; sleep 1; done' sh "$@"; } 2>&1 | tail -n 1)
    awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%d\n", (a[1] + a[2]) * 1000 }'
}
echo
echo "exec probe once per second for ${PROBE_SECS}s: CPU (user+sys, children included)"
printf '  %-40s %s\n' "swiftlet-monitor exec probe" "$MON_MS ms"
kv probe.secs "$PROBE_SECS"; kv probe.swiftlet-monitor_cpu_ms "$MON_MS"
# The same command through each runtime's exec, from a shell (what a per-probe process costs).
SW_MS=$(exec_loop "$SWIFTLET" --root "$STATE" exec "bm-idle-$$-0" true)
printf '  %-40s %s\n' "swiftlet exec (shell loop)" "$SW_MS ms"
kv probe.swiftlet_exec_cpu_ms "$SW_MS"
if [ -n "$RUNC" ]; then
    bundle "$WORK/runc-bundle" '["sleep","100000"]' >/dev/null
    "$RUNC" --root "$WORK/runc-state" run -d --bundle "$WORK/runc-bundle" "bm-runc-$$" </dev/null >/dev/null 2>&1 || die "runc run failed"
    RUNC_MS=$(exec_loop "$RUNC" --root "$WORK/runc-state" exec "bm-runc-$$" true)
    printf '  %-40s %s\n' "runc exec (shell loop)" "$RUNC_MS ms"
    kv probe.runc_exec_cpu_ms "$RUNC_MS"
    awk -v a="$MON_MS" -v b="$RUNC_MS" 'BEGIN { if (b > 0) printf "  monitor probe / runc exec: %.3f (target <= 0.333)\n", a / b }'
fi
if [ -n "$CRUN" ] && [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" != cgroup2fs ]; then
    bundle "$WORK/crun-bundle" '["sleep","100000"]' >/dev/null
    if "$CRUN" --root "$WORK/crun-state" run -d --bundle "$WORK/crun-bundle" "bm-crun-$$" </dev/null >/dev/null 2>&1; then
        CRUN_MS=$(exec_loop "$CRUN" --root "$WORK/crun-state" exec "bm-crun-$$" true)
        printf '  %-40s %s\n' "crun exec (shell loop)" "$CRUN_MS ms"
        kv probe.crun_exec_cpu_ms "$CRUN_MS"
    fi
fi
for i in 0 1; do stop "bm-idle-$$-$i"; stop "bm-idle2-$$-$i"; done
