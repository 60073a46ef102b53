#!/usr/bin/env bash
# containerd-smoke.sh - drive an OCI runtime through a private containerd 1.6 with `ctr`.
#
#   bash Scripts/containerd-smoke.sh [RUNTIME]
#
# RUNTIME: the runtime binary (default: $SWIFTLET_BINARY, else <repo>/.build/debug/swiftlet); any
# runc-compatible runtime works (`bash Scripts/containerd-smoke.sh "$(command -v runc)"`).
#
# Everything lives in a temp dir: containerd's config, root, state and sockets (CRI plugin
# disabled), the runtime's state (--runc-root) and stdio FIFOs (--fifo-dir). containerd is started
# with setsid in the background and stopped by its PID when the script exits (never by name).
# containerd 1.6 itself still puts shim sockets in /run/containerd/s.
# The image is the busybox test rootfs (Scripts/make-rootfs.sh) packed into an OCI layout with
# umoci and loaded with `ctr image import --base-name`.
# Steps (each prints PASS or FAIL; the exit status is 1 when any failed, 2 on a set-up error):
#   run --rm echo; run -d sleep; task ls RUNNING; task exec; task kill; wait STOPPED;
#   task rm; container rm; exit code propagated by run --rm.
# Knobs: SMOKE_KEEP=1 keeps the temp dir; SMOKE_TIMEOUT (default 60) bounds every ctr call (s).
# Needs root and: containerd ctr umoci tar (Scripts/install-deps.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TMO=${SMOKE_TIMEOUT:-60}

die() { echo "containerd-smoke: error: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root"
for c in containerd ctr umoci tar timeout setsid; do
    command -v "$c" >/dev/null || die "$c not found (run Scripts/install-deps.sh)"
done
RT=${1:-${SWIFTLET_BINARY:-$REPO/.build/debug/swiftlet}}
RT_PATH=$(command -v "$RT" 2>/dev/null) || die "runtime not found: $RT"
RT=$(readlink -f "$RT_PATH")
[ -x "$RT" ] || die "runtime not executable: $RT"

DIR=$(mktemp -d /tmp/swiftlet-ctrd.XXXXXX) # short: unix socket paths are limited to 108 bytes
SOCK=$DIR/containerd.sock
NS=swiftlet-smoke
IMG=localhost/swiftlet-busybox:latest
CTR=(timeout -k 5 "$TMO" ctr --address "$SOCK" --namespace "$NS")
RUNOPT=(--runc-binary "$RT" --runc-root "$DIR/runc-root" --fifo-dir "$DIR/fifo")
ID=smoke-$$
DAEMON=""

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
    local rc=$? c
    set +e
    if [ -n "$DAEMON" ] && kill -0 "$DAEMON" 2>/dev/null; then
        # Leftover tasks and containers (after a failure): kill and remove them so their shims exit.
        for c in $("${CTR[@]}" task ls -q 2>/dev/null); do
            "${CTR[@]}" task kill -s KILL "$c" >/dev/null 2>&1
            "${CTR[@]}" task rm -f "$c" >/dev/null 2>&1
        done
        for c in $("${CTR[@]}" container ls -q 2>/dev/null); do
            "${CTR[@]}" container rm "$c" >/dev/null 2>&1
        done
        kill -TERM "$DAEMON" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON" 2>/dev/null
        wait "$DAEMON" 2>/dev/null
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then
        echo "containerd-smoke: kept $DIR" >&2
    else
        # Unmount whatever is still mounted under our dir (deepest first), then remove it.
        awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
            while read -r m; do umount -l "$m"; done
        rm -rf --one-file-system "$DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR"/{fifo,runc-root}
cat >"$DIR/config.toml" <<EOF
version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$DIR/debug.sock"
  level = "info"
EOF

setsid containerd --config "$DIR/config.toml" >"$DIR/containerd.log" 2>&1 </dev/null &
DAEMON=$!
for _ in $(seq 100); do
    ctr --address "$SOCK" version >/dev/null 2>&1 && break
    kill -0 "$DAEMON" 2>/dev/null || break
    sleep 0.1
done
if ! ctr --address "$SOCK" version >/dev/null 2>&1; then
    tail -n 20 "$DIR/containerd.log" >&2
    die "containerd did not come up"
fi

# The image: the test rootfs in an OCI layout.
ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"
{
    umoci init --layout "$DIR/oci" &&
        umoci new --image "$DIR/oci:latest" &&
        umoci unpack --image "$DIR/oci:latest" "$DIR/unpack" &&
        rm -rf "$DIR/unpack/rootfs" && cp -a "$ROOTFS" "$DIR/unpack/rootfs" &&
        umoci repack --image "$DIR/oci:latest" "$DIR/unpack" &&
        umoci config --image "$DIR/oci:latest" --config.cmd /bin/sh \
            --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin &&
        tar -C "$DIR/oci" -cf "$DIR/image.tar" .
} >"$DIR/umoci.log" 2>&1 || { cat "$DIR/umoci.log" >&2; die "building the OCI image with umoci failed"; }
rm -rf "$DIR/unpack"
"${CTR[@]}" image import --base-name "${IMG%:*}" "$DIR/image.tar" >"$DIR/import.log" 2>&1 ||
    { cat "$DIR/import.log" >&2; die "ctr image import failed"; }
"${CTR[@]}" image ls -q | grep -qx "$IMG" || die "image $IMG missing after import"

echo "containerd-smoke: containerd $(containerd --version | awk '{print $3}') pid $DAEMON, dir $DIR"
echo "containerd-smoke: runtime $RT ($("$RT" --version 2>&1 | head -n 1 || true))"

FAILED=0
pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1"
    FAILED=1
    if [ -n "${2:-}" ]; then tail -n 5 <<<"$2" | sed 's/^/    /'; fi
}
# step NAME EXPECTED-SUBSTRING CMD...: passes when CMD exits 0 and its output holds EXPECTED.
step() {
    local name=$1 want=$2 out rc=0
    shift 2
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" = 0 ] && [[ $out == *"$want"* ]]; then
        pass "$name"
        return 0
    fi
    fail "$name (exit $rc, wanted \"$want\")" "$out"
    return 1
}
task_status() { "${CTR[@]}" task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }

step "run --rm echo hello" "hello" "${CTR[@]}" run --rm "${RUNOPT[@]}" "$IMG" "$ID-echo" echo hello || true

if step "run -d sleep 100" "" "${CTR[@]}" run -d "${RUNOPT[@]}" "$IMG" "$ID" sleep 100; then
    st=""
    for _ in $(seq 50); do st=$(task_status "$ID"); [ "$st" = RUNNING ] && break; sleep 0.1; done
    if [ "$st" = RUNNING ]; then pass "task ls shows RUNNING"; else fail "task ls shows RUNNING (status: ${st:-none})"; fi
    step "task exec echo inside" "inside" "${CTR[@]}" task exec --exec-id e1 "$ID" echo inside || true
    step "task kill -s KILL" "" "${CTR[@]}" task kill -s KILL "$ID" || true
    for _ in $(seq 100); do st=$(task_status "$ID"); [ "$st" = STOPPED ] && break; sleep 0.1; done
    if [ "$st" = STOPPED ]; then pass "task stopped after kill"; else fail "task stopped after kill (status: ${st:-none})"; fi
    step "task rm" "" "${CTR[@]}" task rm "$ID" || true
else
    fail "task exec/kill/rm skipped: the detached container did not start"
fi
step "container rm" "" "${CTR[@]}" container rm "$ID" || true

rc=0
out=$("${CTR[@]}" run --rm "${RUNOPT[@]}" "$IMG" "$ID-exit" sh -c 'exit 7' 2>&1) || rc=$?
if [ "$rc" = 7 ]; then pass "exit code 7 propagated"; else fail "exit code 7 propagated (got $rc)" "$out"; fi

if [ "$FAILED" = 0 ]; then
    echo "containerd-smoke: all steps passed"
else
    echo "containerd-smoke: FAILED; last errors in containerd's log:"
    grep -E 'level=(error|warning)' "$DIR/containerd.log" | grep -vE 'snapshotter|devmapper|plugin|cleanup warnings|copy shim log' |
        tail -n 6 | sed 's/^/    /' || true
fi
exit "$FAILED"
