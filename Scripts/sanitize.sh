#!/usr/bin/env bash
# sanitize.sh - build swiftlet and the tests with a sanitizer and run the unit and integration
# tests against that build. As root on Debian bookworm:
#
#   bash Scripts/sanitize.sh [address|thread]...      (default: address)
#
# Each sanitizer builds into its own .build-SANITIZER directory (`swift build --sanitize=...`; the
# swiftlet binary there links the Swift stdlib dynamically), then runs `swift test` on it with
# SWIFTLET_BINARY set to that binary, so every runtime process the integration tests start is
# instrumented too. Sanitizer reports go to stderr (ASAN_OPTIONS/TSAN_OPTIONS from the environment
# are kept; the defaults below make any report fatal). `undefined` is not offered: swiftc 6.3 refuses
# -sanitize=undefined for x86_64-unknown-linux-gnu. Under `thread`, the TSan runtime's own thread
# makes setns(mount) and unshare(user) fail (they need a single-threaded caller): exec and user
# namespace tests fail there for that reason alone. Knobs: SWIFT_TEST_FLAGS (e.g.
# "--filter IntegrationTests.LifecycleTests"), SWIFTLET_ROOTFS. Not part of CI: about 10 minutes per
# sanitizer on 2 cores. Results are recorded in Spec/reliability.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
SWIFTLET_ROOTFS=${SWIFTLET_ROOTFS:-$(bash "$HERE/make-rootfs.sh")}
export SWIFTLET_ROOTFS
# detect_leaks=0: LeakSanitizer stops the world with ptrace-like machinery that fails in forked
# namespace children, and every child _exits without freeing by design.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1}
read -ra TEST_FLAGS <<<"${SWIFT_TEST_FLAGS:-}"

status=0
for san in "${@:-address}"; do
    case $san in address | thread) ;; *) echo "sanitize.sh: unknown sanitizer $san" >&2; exit 2 ;; esac
    bp=$REPO/.build-$san
    echo "==== sanitize.sh: $san: build"
    swift build --build-path "$bp" --sanitize="$san" --build-tests >&2
    mkdir -p "$bp/test-bin"
    cp -f "$bp/debug/swiftlet" "$bp/test-bin/swiftlet"
    echo "==== sanitize.sh: $san: swift test"
    if ! SWIFTLET_BINARY=$bp/test-bin/swiftlet swift test --build-path "$bp" --sanitize="$san" --skip-build \
        --disable-swift-testing "${TEST_FLAGS[@]}"; then
        echo "sanitize.sh: $san: FAILED"
        status=1
    else
        echo "sanitize.sh: $san: passed"
    fi
done
exit $status
