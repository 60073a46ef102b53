#!/usr/bin/env bash
# bench-systemd.sh - `run` of /bin/true with the systemd cgroup driver, swiftlet against runc, in paired
# rounds (the order alternates). Needs systemd as PID 1, so it runs in the systemd VM:
#
#   SWIFTLET_BINARY=$PWD/.build/test-bin/swiftlet SWIFTLET_ROOTFS=$PWD/test-rootfs \
#       bash Scripts/vm-test.sh --systemd -- bash Scripts/bench-systemd.sh
#
# Environment: SWIFTLET_BINARY (required), RUNC (default /usr/sbin/runc), SWIFTLET_ROOTFS (required),
# RUNS (default 20), WARMUP (default 2), BENCH_SYSTEMD_OUT (a file for "key value" result lines;
# Scripts/bench.sh's BENCH_SYSTEMD=1 sets it and runs this in the VM). Prints the medians and the
# median of the per-round ratios swiftlet/runc. The times are TCG's (10-20x the host's); only the
# ratio means something.
set -euo pipefail
SWIFTLET=${SWIFTLET_BINARY:?set SWIFTLET_BINARY}
RUNC=${RUNC:-/usr/sbin/runc}
ROOTFS=${SWIFTLET_ROOTFS:?set SWIFTLET_ROOTFS}
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-2}
[ -d /run/systemd/system ] || { echo "bench-systemd.sh: systemd is not PID 1 here (use vm-test.sh --systemd)" >&2; exit 1; }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bundle" "$W/state"
(cd "$W/bundle" && "$RUNC" spec)
python3 - "$W/bundle/config.json" "$ROOTFS" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["root"] = {"path": sys.argv[2], "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY

n=0
one() { # RUNTIME -> milliseconds of one `run` in a fresh scope
    n=$((n + 1))
    local t0 t1
    t0=$(date +%s%N)
    "$1" --root "$W/state" --systemd-cgroup run --bundle "$W/bundle" "bench$n" >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
}
for _ in $(seq "$WARMUP"); do one "$SWIFTLET" >/dev/null; one "$RUNC" >/dev/null; done
: >"$W/times"
for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 0 ]; then s=$(one "$SWIFTLET"); r=$(one "$RUNC"); else r=$(one "$RUNC"); s=$(one "$SWIFTLET"); fi
    echo "$s $r" >>"$W/times"
done
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
sw=$(cut -d' ' -f1 "$W/times" | median)
rc=$(cut -d' ' -f2 "$W/times" | median)
ratio=$(awk '{ printf "%.4f\n", $1 / $2 }' "$W/times" | median)
printf 'bench-systemd: run --systemd-cgroup, %d rounds: swiftlet %.1f ms, runc %.1f ms (medians); swiftlet/runc %.2f (median of per-round ratios)\n' \
    "$RUNS" "$(awk -v v="$sw" 'BEGIN { print v / 1000 }')" "$(awk -v v="$rc" 'BEGIN { print v / 1000 }')" "$ratio"
if [ -n "${BENCH_SYSTEMD_OUT:-}" ]; then
    printf 'runs %d\nswiftlet_ms %s\nrunc_ms %s\nratio_swiftlet_runc %s\nrunc %s\n' "$RUNS" \
        "$(awk -v v="$sw" 'BEGIN { print v / 1000 }')" "$(awk -v v="$rc" 'BEGIN { print v / 1000 }')" "$ratio" \
        "$("$RUNC" --version | head -n 1)" >"$BENCH_SYSTEMD_OUT"
fi
