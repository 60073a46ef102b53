#!/usr/bin/env bash
# demo.sh - run one busybox container with `swiftlet run` (as root).
#
#   bash Scripts/demo.sh
#
# Uses $SWIFTLET (default: <repo>/.build/release/swiftlet, from `Scripts/build.sh release`) and the
# test rootfs from Scripts/make-rootfs.sh. Makes a bundle in a temp dir whose config.json comes from
# `swiftlet spec`, edited with jq: terminal false, a small shell command as args, root.path pointing
# (read-only) at the absolute test-rootfs path. Then `swiftlet run --bundle B demo-PID`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SL=${SWIFTLET:-$REPO/.build/release/swiftlet}

die() { echo "demo: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$SL" ] || die "$SL not found: run 'bash Scripts/build.sh release' first (or set SWIFTLET)"
command -v jq >/dev/null || die "jq not found: run 'bash Scripts/install-deps.sh'"
ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"

TMP=$(mktemp -d /tmp/swiftlet-demo.XXXXXX)
ID=demo-$$
cleanup() {
    "$SL" delete --force "$ID" >/dev/null 2>&1 || true
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT

B=$TMP/bundle
mkdir -p "$B"
(cd "$B" && "$SL" spec) || die "swiftlet spec failed"
[ -f "$B/config.json" ] || die "swiftlet spec wrote no config.json"
# shellcheck disable=SC2016 # $(hostname) is for the container's shell
jq --arg root "$ROOTFS" '
    .process.terminal = false
  | .process.args = ["sh", "-c", "echo hello from $(hostname) in a busybox container; id"]
  | .root = {"path": $root, "readonly": true}' "$B/config.json" >"$B/config.json.new"
mv "$B/config.json.new" "$B/config.json"

echo "+ swiftlet run --bundle $B $ID"
"$SL" run --bundle "$B" "$ID"
