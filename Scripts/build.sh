#!/usr/bin/env bash
# build.sh - build swiftlet and swiftlet-monitor with the Swift stdlib linked statically (as shipped).
#
#   bash Scripts/build.sh [debug|release]       (default: debug)
#
# Runs `swift build -c CFG --static-swift-stdlib --disable-local-rpath --product P` for both products
# (static-PIE binaries: no $ORIGIN runpath, see Package.swift) in the repo root and
# prints the absolute path of the swiftlet binary on stdout (swiftlet-monitor sits next to it; the
# build log goes to stderr), so callers can do
#   bin=$(bash Scripts/build.sh release); monitor=$(dirname "$bin")/swiftlet-monitor
# Extra arguments for swift build can be passed in SWIFT_BUILD_FLAGS (word-split).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CFG=${1:-debug}

die() { echo "build: error: $*" >&2; exit 1; }

case $CFG in debug | release) ;; *) die "usage: build.sh [debug|release]" ;; esac
if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] || die "swift not found (expected on PATH or at /opt/swift/usr/bin)"
    export PATH="/opt/swift/usr/bin:$PATH"
fi

cd "$REPO"
read -ra EXTRA <<<"${SWIFT_BUILD_FLAGS:-}"
# The build log goes to stderr: stdout carries only the binary path.
for product in swiftlet swiftlet-monitor; do
    swift build -c "$CFG" --static-swift-stdlib --disable-local-rpath --product "$product" "${EXTRA[@]}" >&2 ||
        die "swift build -c $CFG --product $product failed"
done
BIN_DIR=$(swift build -c "$CFG" --disable-local-rpath --show-bin-path "${EXTRA[@]}")
for product in swiftlet swiftlet-monitor; do
    [ -x "$BIN_DIR/$product" ] || die "build succeeded but $BIN_DIR/$product is missing"
done
echo "$BIN_DIR/swiftlet"
