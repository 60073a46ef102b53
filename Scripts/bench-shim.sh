#!/usr/bin/env bash
# bench-shim.sh - containerd-shim-swiftlet-v2 against containerd-shim-runc-v2 (driving swiftlet through
# --runc-binary), in one paired run under a private containerd 1.6 (issue 18's benchmark).
#
#   bash Scripts/bench-shim.sh          (bench.sh runs it with BENCH_SHIM=1)
#
# Environment (all optional):
#   SWIFTLET=PATH   the swiftlet binary; swiftlet-monitor beside it is the shim (a copy named
#                   containerd-shim-swiftlet-v2 goes on containerd's PATH). Unset: Scripts/build.sh release.
#   RUNS=20         paired rounds of `ctr run --rm IMAGE ID true` (each round runs both shims, the order
#                   alternating); the report gives medians (p25-p75) of the times and of the ratios
#   PODS="1 100"    for each N: N detached `sleep` containers per shim (one shim each, as one pod each);
#                   reported: median `ctr run -d` time (start to running), per-shim private memory
#                   (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) and threads
#   BENCH_SHIM_KEEP=1 keeps the work dir.
# Needs root, containerd, ctr, umoci. Everything it starts is stopped by PID; its dir is removed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench-stats.sh
. "$HERE/bench-stats.sh"
RUNS=${RUNS:-20}
PODS=${PODS:-"1 100"}

die() { echo "bench-shim: error: $*" >&2; exit 1; }
note() { echo "bench-shim: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root"
for c in containerd ctr umoci containerd-shim-runc-v2; do command -v "$c" >/dev/null || die "$c not found (Scripts/install-deps.sh)"; done
SWIFTLET=${SWIFTLET:-$(bash "$HERE/build.sh" release)} || die "build failed"
MONITOR=$(dirname "$SWIFTLET")/swiftlet-monitor
[ -x "$SWIFTLET" ] && [ -x "$MONITOR" ] || die "need $SWIFTLET and $MONITOR"

DIR=$(mktemp -d /tmp/sl-bshim.XXXXXX)
SOCK=$DIR/c.sock
NS=bench-shim
IMG=localhost/bench-shim:latest
CTR=(timeout -k 5 120 ctr --address "$SOCK" --namespace "$NS")
DAEMON=""

cleanup() {
    local rc=$? c
    set +e
    if [ -n "$DAEMON" ]; then
        for c in $("${CTR[@]}" task ls -q 2>/dev/null); do "${CTR[@]}" task kill -s KILL "$c" >/dev/null 2>&1; done
        sleep 1
        for c in $("${CTR[@]}" task ls -q 2>/dev/null); do "${CTR[@]}" task rm -f "$c" >/dev/null 2>&1; done
        for c in $("${CTR[@]}" container ls -q 2>/dev/null); do "${CTR[@]}" container rm "$c" >/dev/null 2>&1; done
        kill -TERM "$DAEMON" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON" 2>/dev/null
    fi
    awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    [ "${BENCH_SHIM_KEEP:-0}" = 1 ] && note "kept $DIR" || rm -rf --one-file-system "$DIR"
    rmdir "/run/containerd/swiftlet/$NS" 2>/dev/null
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR/bin"
cp "$MONITOR" "$DIR/bin/containerd-shim-swiftlet-v2"
ln -s "$SWIFTLET" "$DIR/bin/swiftlet"
cat >"$DIR/config.toml" <<EOF
version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
EOF
PATH=$DIR/bin:$PATH setsid containerd --config "$DIR/config.toml" >"$DIR/containerd.log" 2>&1 </dev/null &
DAEMON=$!
for _ in $(seq 100); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$SOCK" version >/dev/null 2>&1 || die "containerd did not come up"

ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"
{
    umoci init --layout "$DIR/oci" && umoci new --image "$DIR/oci:latest" &&
        umoci unpack --image "$DIR/oci:latest" "$DIR/unpack" && rm -rf "$DIR/unpack/rootfs" &&
        cp -a "$ROOTFS" "$DIR/unpack/rootfs" && umoci repack --image "$DIR/oci:latest" "$DIR/unpack" &&
        umoci config --image "$DIR/oci:latest" --config.cmd /bin/sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin &&
        tar -C "$DIR/oci" -cf "$DIR/image.tar" . && rm -rf "$DIR/unpack"
} >"$DIR/umoci.log" 2>&1 || die "building the image failed (see $DIR/umoci.log)"
"${CTR[@]}" image import --base-name "${IMG%:*}" "$DIR/image.tar" >/dev/null || die "ctr image import failed"

# The two ways to run a container: ours, and the runc shim with swiftlet as its binary.
OURS=(--runtime io.containerd.swiftlet.v2)
RUNCSHIM=(--runtime io.containerd.runc.v2 --runc-binary "$SWIFTLET" --runc-root "$DIR/runc-root")
now() { date +%s%N; }

echo "bench-shim: containerd $(containerd --version | awk '{print $3}'), swiftlet $SWIFTLET, $RUNS rounds, pods: $PODS"

# --- ctr run --rm, paired ---------------------------------------------------------------------
: >"$DIR/rm.ours"; : >"$DIR/rm.runc"; : >"$DIR/rm.ratio"
for i in $(seq "$RUNS"); do
    declare -A t=()
    order=(ours runc); [ $((i % 2)) = 0 ] && order=(runc ours)
    for which in "${order[@]}"; do
        if [ "$which" = ours ]; then opts=("${OURS[@]}"); else opts=("${RUNCSHIM[@]}"); fi
        s=$(now)
        "${CTR[@]}" run --rm "${opts[@]}" "$IMG" "rm-$which-$i" true >/dev/null || die "ctr run --rm ($which) failed"
        t[$which]=$(($(now) - s))
    done
    echo "${t[ours]}" >>"$DIR/rm.ours"; echo "${t[runc]}" >>"$DIR/rm.runc"
    awk -v a="${t[ours]}" -v b="${t[runc]}" 'BEGIN { printf "%.4f\n", a / b }' >>"$DIR/rm.ratio"
done
echo "ctr run --rm true (ms):  swiftlet shim $(stats "$DIR/rm.ours" 1000000 1)   runc shim $(stats "$DIR/rm.runc" 1000000 1)   ratio ours/runc $(stats "$DIR/rm.ratio" 1 2)"

# --- N pods per shim: start-to-running, private memory, threads --------------------------------
shim_pids() { # the shims serving this containerd (their socket's parent is our containerd's address)
    local p
    for p in $(pgrep -f "containerd-shim-(swiftlet|runc)-v2 .*-address $SOCK( |$)"); do echo "$p"; done
}
for n in $PODS; do
    for which in ours runc; do
        if [ "$which" = ours ]; then opts=("${OURS[@]}"); else opts=("${RUNCSHIM[@]}"); fi
        : >"$DIR/start.$which.$n"; : >"$DIR/priv.$which.$n"; : >"$DIR/thr.$which.$n"
        for j in $(seq "$n"); do
            s=$(now)
            "${CTR[@]}" run -d "${opts[@]}" "$IMG" "pod-$which-$n-$j" sleep 3600 >/dev/null || die "ctr run -d ($which) failed"
            echo $(($(now) - s)) >>"$DIR/start.$which.$n"
        done
        sleep 1
        sync # a binary written moments ago has dirty page-cache pages that count as Private_Dirty
        for p in $(shim_pids); do
            awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' "/proc/$p/smaps_rollup" >>"$DIR/priv.$which.$n"
            ls "/proc/$p/task" | wc -l >>"$DIR/thr.$which.$n"
        done
        echo "$n pod(s), $which shim: ctr run -d $(stats "$DIR/start.$which.$n" 1000000 1) ms, private memory per shim $(stats "$DIR/priv.$which.$n" 1024 2) MiB, threads $(stats "$DIR/thr.$which.$n" 1 0), shims $(wc -l <"$DIR/priv.$which.$n")"
        for j in $(seq "$n"); do "${CTR[@]}" task kill -s KILL "pod-$which-$n-$j" >/dev/null 2>&1 || true; done
        for j in $(seq "$n"); do
            for _ in $(seq 100); do "${CTR[@]}" task rm "pod-$which-$n-$j" >/dev/null 2>&1 && break; sleep 0.1; done
            "${CTR[@]}" container rm "pod-$which-$n-$j" >/dev/null 2>&1 || true
        done
        for _ in $(seq 100); do [ -z "$(shim_pids)" ] && break; sleep 0.1; done
    done
done
