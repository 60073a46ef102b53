#!/usr/bin/env bash
# bench.sh - time `RT run` of /bin/true for swiftlet, crun and runc, paired, in one run.
#
#   bash Scripts/bench.sh
#
# Environment (all optional):
#   SWIFTLET=PATH   swiftlet binary to measure; unset: build it with `Scripts/build.sh release`
#                   (a failed build is reported and the other runtimes are still measured)
#   CRUN=PATH       default: `command -v crun`;   RUNC=PATH   default: `command -v runc`
#                   Set any of the three to "none" to leave it out.
#   RUNS=30         measured rounds;  WARMUP=3 unmeasured rounds;  RSS_RUNS=5 `create` runs for RSS
#   BENCH_HYPERFINE=1  also run hyperfine over the same commands (not paired; 0 to skip)
#   BENCH_KEEP_HYBRID=0  see "cgroups" below
#   BENCH_MONITOR=1  then run Scripts/bench-monitor.sh (swiftlet-monitor vs conmon: launch latency,
#                    idle footprint, exec-probe CPU; its knobs LAUNCHES, IDLE, PROBE_SECS); 0 skips it
#
# What is measured: wall time of `RT --root STATE run --bundle B ID` (run includes the container's
# deletion) with a bundle made from `runc spec` (args ["/bin/true"], terminal false, root.path = the
# test rootfs from Scripts/make-rootfs.sh). Rounds are paired: every round runs each runtime once,
# the order rotating from round to round, and each round gives the ratios swiftlet/crun,
# swiftlet/runc and crun/runc; the report prints medians (p25-p75) of the times and of the
# per-round ratios. Only compare numbers from one run: absolute times drift by 30% here.
# Peak RSS: GNU time's %M of `RT create` (median of RSS_RUNS), when /usr/bin/time is installed.
#
# cgroups: crun 1.8.1 refuses hybrid cgroups whose cgroup2 mount holds controllers. Wrapping each
# crun call in `unshare -m ... umount /sys/fs/cgroup/unified` would add ~3 ms to crun alone, so by
# default the whole benchmark re-executes itself in a private mount namespace where
# /sys/fs/cgroup/unified is unmounted: all three runtimes then see the same (pure v1) layout. The
# host's mounts are never touched. BENCH_KEEP_HYBRID=1 keeps the host layout for swiftlet and runc
# and wraps only crun per call (its numbers then include that wrapper; the report shows its cost).
# Needs root, jq, and runc or crun (for `runc spec`).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=${RUNS:-30} WARMUP=${WARMUP:-3} RSS_RUNS=${RSS_RUNS:-5}
UNIFIED=/sys/fs/cgroup/unified

die() { echo "bench: error: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root"
command -v jq >/dev/null || die "jq not found (Scripts/install-deps.sh)"

hybrid_with_controllers() {
    [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ] &&
        [ "$(stat -f -c %T "$UNIFIED" 2>/dev/null)" = cgroup2fs ] &&
        [ -n "$(cat "$UNIFIED/cgroup.controllers" 2>/dev/null)" ]
}

# --- which runtimes -------------------------------------------------------------------------
resolve() { # NAME VALUE -> prints absolute path or nothing
    local v=$2
    [ "$v" = none ] && return 0
    if [ -n "$v" ] && command -v "$v" >/dev/null 2>&1; then
        readlink -f "$(command -v "$v")"
    elif [ -n "$v" ]; then
        note "$1: $v not found, left out"
    fi
}
CRUN_BIN=$(resolve crun "${CRUN-$(command -v crun || true)}")
RUNC_BIN=$(resolve runc "${RUNC-$(command -v runc || true)}")

# Re-exec in a private mount namespace without the cgroup2 mount (see header), once.
if [ -z "${BENCH_IN_PRIVATE_NS:-}" ] && [ "${BENCH_KEEP_HYBRID:-0}" != 1 ] && [ -n "$CRUN_BIN" ] &&
    hybrid_with_controllers; then
    note "hybrid cgroups with controllers in $UNIFIED: re-running in a private mount namespace without it"
    # shellcheck disable=SC2016 # $1/$@ belong to the inner bash
    exec env BENCH_IN_PRIVATE_NS=1 unshare -m --propagation private \
        bash -c 'umount "$1" || exit 1; shift; exec bash "$@"' sh "$UNIFIED" "$0" "$@"
fi

SWIFTLET_BIN=""
if [ "${SWIFTLET-}" = none ]; then
    :
elif [ -n "${SWIFTLET:-}" ]; then
    SWIFTLET_BIN=$(resolve swiftlet "$SWIFTLET")
else
    note "building swiftlet (release)..."
    if out=$(bash "$HERE/build.sh" release 2>/tmp/swiftlet-bench-build.log); then
        SWIFTLET_BIN=$out
    else
        note "swiftlet: release build FAILED (log: /tmp/swiftlet-bench-build.log); measuring the others"
        { grep -E 'error' /tmp/swiftlet-bench-build.log || tail -n 5 /tmp/swiftlet-bench-build.log; } |
            head -n 5 | sed 's/^/    /' >&2
    fi
fi

WORK=$(mktemp -d /tmp/swiftlet-bench.XXXXXX)
NAMES=() BINS=()
[ -n "$SWIFTLET_BIN" ] && NAMES+=(swiftlet) && BINS+=("$SWIFTLET_BIN")
[ -n "$CRUN_BIN" ] && NAMES+=(crun) && BINS+=("$CRUN_BIN")
[ -n "$RUNC_BIN" ] && NAMES+=(runc) && BINS+=("$RUNC_BIN")

# rt_cmd I: sets CMD to the command line that runs runtime I with its private state root.
rt_cmd() {
    local i=$1
    if [ "${NAMES[$i]}" = crun ] && [ "${BENCH_KEEP_HYBRID:-0}" = 1 ] && hybrid_with_controllers; then
        # shellcheck disable=SC2016 # $0/$@ belong to the inner sh
        CMD=(unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$0" "$@"'
            "${BINS[$i]}" --root "$WORK/state-${NAMES[$i]}")
    else
        CMD=("${BINS[$i]}" --root "$WORK/state-${NAMES[$i]}")
    fi
}
rt() { # I ARGS...
    rt_cmd "$1"
    shift
    "${CMD[@]}" "$@"
}
cid() { echo "bench-$$-${NAMES[$1]}"; }

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
    local i
    for i in "${!NAMES[@]}"; do rt "$i" delete --force "$(cid "$i")" >/dev/null 2>&1 || true; done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# --- the bundle -----------------------------------------------------------------------------
ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"
SPEC=""
for s in "$RUNC_BIN" "$CRUN_BIN" "$(command -v runc || true)" "$(command -v crun || true)"; do
    [ -n "$s" ] && SPEC=$s && break
done
[ -n "$SPEC" ] || die "need runc or crun for \`runc spec\`"
mkdir -p "$WORK/spec" "$WORK/bundle"
(cd "$WORK/spec" && "$SPEC" spec) || die "$SPEC spec failed"
jq --arg root "$ROOTFS" '.process.terminal = false | .process.args = ["/bin/true"] | .root.path = $root' \
    "$WORK/spec/config.json" >"$WORK/bundle/config.json"
BUNDLE=$WORK/bundle

# --- sanity: drop runtimes that cannot run the bundle ----------------------------------------
KEEP_N=() KEEP_B=()
for i in "${!NAMES[@]}"; do
    if out=$(rt "$i" run --bundle "$BUNDLE" "$(cid "$i")" </dev/null 2>&1); then
        KEEP_N+=("${NAMES[$i]}") KEEP_B+=("${BINS[$i]}")
    else
        note "${NAMES[$i]} (${BINS[$i]}) cannot run the bundle, left out: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
        rt "$i" delete --force "$(cid "$i")" >/dev/null 2>&1 || true
    fi
done
NAMES=("${KEEP_N[@]}") BINS=("${KEEP_B[@]}")
[ ${#NAMES[@]} -gt 0 ] || die "no runtime to measure"
[ -n "$SWIFTLET_BIN" ] && [[ " ${NAMES[*]} " != *" swiftlet "* ]] && note "swiftlet is NOT measured (see above)"
[ -z "$SWIFTLET_BIN" ] && note "swiftlet is NOT measured (no binary)"

echo "# bench $(date -u +%FT%TZ) kernel=$(uname -r) cores=$(nproc) runs=$RUNS warmup=$WARMUP" \
    "cgroups=$(if [ -n "${BENCH_IN_PRIVATE_NS:-}" ]; then echo "v1 (private mount ns, unified unmounted)"; elif hybrid_with_controllers; then echo hybrid; else echo host; fi)"
for i in "${!NAMES[@]}"; do
    echo "# ${NAMES[$i]}: ${BINS[$i]} ($("${BINS[$i]}" --version 2>&1 | head -n 1 || true))"
done

# --- paired timing --------------------------------------------------------------------------
ERR=$WORK/errors.log
one() { # I -> LAST (microseconds); 1 on failure
    local t0 t1 id
    id=$(cid "$1")
    t0=${EPOCHREALTIME/./}
    if ! rt "$1" run --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>>"$ERR"; then
        rt "$1" delete --force "$id" >/dev/null 2>&1 || true
        return 1
    fi
    t1=${EPOCHREALTIME/./}
    LAST=$((t1 - t0))
}
K=${#NAMES[@]}
for ((r = 0; r < WARMUP; r++)); do for ((i = 0; i < K; i++)); do one "$i" || true; done; done
FAILS=0
for ((r = 0; r < RUNS; r++)); do
    declare -A T=()
    ok=1
    for ((j = 0; j < K; j++)); do
        i=$(((r + j) % K)) # rotate the order every round
        if one "$i"; then T[$i]=$LAST; else ok=0; FAILS=$((FAILS + 1)); fi
    done
    [ $ok = 1 ] || { unset T; continue; }
    for ((i = 0; i < K; i++)); do
        echo "${T[$i]}" >>"$WORK/t.${NAMES[$i]}"
        for ((j = i + 1; j < K; j++)); do
            awk -v a="${T[$i]}" -v b="${T[$j]}" 'BEGIN { printf "%.4f\n", a / b }' \
                >>"$WORK/r.${NAMES[$i]}-${NAMES[$j]}"
        done
    done
    unset T
done

stats() { # FILE SCALE DECIMALS -> "median (p25-p75)"
    sort -g "$1" | awk -v s="$2" -v d="$3" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        f = "%." d "f"
        printf f " (" f "-" f ")", m / s, v[int((NR - 1) * 0.25) + 1] / s, v[int((NR - 1) * 0.75) + 1] / s }'
}

# --- peak RSS of create ---------------------------------------------------------------------
declare -A RSS=()
if [ -x /usr/bin/time ]; then
    for i in "${!NAMES[@]}"; do
        : >"$WORK/rss.${NAMES[$i]}"
        for ((r = 0; r < RSS_RUNS; r++)); do
            id=$(cid "$i")
            rt_cmd "$i"
            if /usr/bin/time -o "$WORK/time.out" -f %M "${CMD[@]}" create --bundle "$BUNDLE" "$id" \
                </dev/null >/dev/null 2>>"$ERR"; then
                tail -n 1 "$WORK/time.out" >>"$WORK/rss.${NAMES[$i]}"
            fi
            rt "$i" delete --force "$id" >/dev/null 2>&1 || true
        done
        if [ -s "$WORK/rss.${NAMES[$i]}" ]; then RSS[$i]=$(stats "$WORK/rss.${NAMES[$i]}" 1024 1); else RSS[$i]="failed"; fi
    done
else
    note "/usr/bin/time missing (apt-get install time): no RSS numbers"
fi

echo
printf '%-10s %-26s %s\n' runtime "run /bin/true [ms]" "create peak RSS [MiB]"
for i in "${!NAMES[@]}"; do
    f=$WORK/t.${NAMES[$i]}
    [ -s "$f" ] || : >"$f"
    printf '%-10s %-26s %s\n' "${NAMES[$i]}" "$(stats "$f" 1000 2) n=$(wc -l <"$f")" "${RSS[$i]:-n/a}"
done
echo
echo "paired ratios (median of per-round ratios, p25-p75):"
for i in "${!NAMES[@]}"; do
    for ((j = i + 1; j < K; j++)); do
        f=$WORK/r.${NAMES[$i]}-${NAMES[$j]}
        [ -s "$f" ] && printf '  %-16s %s\n' "${NAMES[$i]}/${NAMES[$j]}" "$(stats "$f" 1 3)"
    done
done
[ "$FAILS" -gt 0 ] && echo "failed runs: $FAILS (rounds with a failure are dropped); last errors:" &&
    tail -n 3 "$ERR" | sed 's/^/    /'
if [ "${BENCH_KEEP_HYBRID:-0}" = 1 ] && [[ " ${NAMES[*]} " == *" crun "* ]] && hybrid_with_controllers; then
    : >"$WORK/wrap"
    for ((r = 0; r < 10; r++)); do
        t0=${EPOCHREALTIME/./}
        unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec true'
        t1=${EPOCHREALTIME/./}
        echo $((t1 - t0)) >>"$WORK/wrap"
    done
    echo "note: crun times include its per-call unshare+umount wrapper: $(stats "$WORK/wrap" 1000 2) ms"
fi

# --- hyperfine cross-check (not paired) ------------------------------------------------------
if [ "${BENCH_HYPERFINE:-1}" = 1 ] && command -v hyperfine >/dev/null; then
    echo
    echo "# hyperfine cross-check (each runtime's runs back to back, not paired)"
    cmds=()
    for i in "${!NAMES[@]}"; do
        if [ "${NAMES[$i]}" = crun ] && [ "${BENCH_KEEP_HYBRID:-0}" = 1 ] && hybrid_with_controllers; then
            continue # the wrapper needs a shell; the paired numbers above cover it
        fi
        cmds+=(-n "${NAMES[$i]}" "$(printf '%q ' "${BINS[$i]}" --root "$WORK/state-${NAMES[$i]}" run --bundle "$BUNDLE" "$(cid "$i")")")
    done
    if [ ${#cmds[@]} -gt 0 ]; then
        hyperfine -N -w "$WARMUP" -r "$RUNS" --style basic --export-json "$WORK/hf.json" "${cmds[@]}" \
            >"$WORK/hf.txt" 2>&1 || { note "hyperfine failed:"; tail -n 5 "$WORK/hf.txt" >&2; }
        [ -s "$WORK/hf.json" ] && jq -r '.results[] |
            "  \(.command): median \(.median * 1000 * 100 | round / 100) ms, mean \(.mean * 1000 * 100 | round / 100) ± \(.stddev * 1000 * 100 | round / 100) ms"' \
            "$WORK/hf.json"
    fi
fi
# --- the monitor, side by side with conmon --------------------------------------------------------
if [ "${BENCH_MONITOR:-1}" = 1 ] && [ -n "$SWIFTLET_BIN" ]; then
    echo
    SWIFTLET=$SWIFTLET_BIN MONITOR=$(dirname "$SWIFTLET_BIN")/swiftlet-monitor \
        bash "$HERE/bench-monitor.sh" || note "bench-monitor.sh failed"
fi
exit 0
