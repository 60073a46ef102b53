#!/usr/bin/env bash
# test.sh - THE test command (CI runs it through .ci/run). As root on Debian bookworm:
#
#   bash Scripts/test.sh
#
# 1. Scripts/install-deps.sh            (apt packages; quick when already installed)
# 2. Scripts/make-rootfs.sh             (busybox test rootfs -> SWIFTLET_ROOTFS)
# 3. Scripts/build.sh debug             (swiftlet and swiftlet-monitor with the static Swift stdlib).
#                                       Both are copied to .build/test-bin/ -> SWIFTLET_BINARY and
#                                       SWIFTLET_MONITOR, because
#                                       `swift test` relinks .build/debug/swiftlet without
#                                       --static-swift-stdlib.
#    Scripts/install-criu.sh            (a criu that works on this kernel -> SWIFTLET_CRIU)
# 4. swift test                         (XCTest: unit tests and the integration tests, which find the
#                                       binary and rootfs through SWIFTLET_BINARY / SWIFTLET_ROOTFS;
#                                       ShimTests run containerd-shim-swiftlet-v2 (swiftlet-monitor under
#                                       that name) under a private containerd with ctr: containerd, umoci,
#                                       script; see Spec/shim.md); CRISmokeTests drive a private
#                                       containerd's CRI plugin with our own CRI client, pods under
#                                       containerd-shim-runc-v2 and containerd-shim-swiftlet-v2 side by
#                                       side (Spec/testing.md)
# 5. Scripts/soak.sh 100                (100 create/start/delete cycles, failing on leaks; the long
#                                       run is `bash Scripts/soak.sh`, see Spec/reliability.md)
# 6. Scripts/containerd-smoke.sh        (ctr + containerd-shim-runc-v2 driving swiftlet), unless
#                                       SKIP_CONTAINERD=1
# 7. Scripts/podman-test.sh             (podman with swiftlet-monitor as conmon and swiftlet, runc, crun
#                                       as the runtime), unless SKIP_PODMAN=1; then Scripts/podman-rootless-test.sh
#                                       (rootless podman as a normal user, swiftlet and runc)
# 8. Scripts/vm-test.sh                 (the cgroup, mount-feature, lifecycle, fault and checkpoint tests
#                                       again, in a qemu VM with pure cgroup v2 and Linux 6.1), unless SKIP_VM=1
# 9. Scripts/vm-test.sh --systemd       (the systemd cgroup driver's tests in a VM that boots systemd as
#                                       PID 1, rootless on a user's systemd instance too, then podman
#                                       (rootful, and rootless as a lingering user) and containerd with
#                                       the systemd driver:
#                                       Scripts/vm/systemd-clients.sh; then SystemdHybridTests in a VM where
#                                       systemd mounts the hybrid layout), unless SKIP_VM=1 or SKIP_SYSTEMD_VM=1
# Steps 4 to 9 all run even if one fails; the exit status is non-zero when anything failed. The last
# line counts them all: "test.sh: N passed, N failed, N skipped".
# Knobs: SWIFT_TEST_FLAGS (extra `swift test` arguments, e.g. "--filter OCITests"),
#        TEST_TIMEOUT_MIN (default 40, bound on `swift test`), SOAK_CYCLES (default 100, 0 skips),
#        SKIP_CONTAINERD=1, SKIP_PODMAN=1, SKIP_VM=1, SKIP_SYSTEMD_VM=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"

START=$SECONDS
section() { echo; echo "==== test.sh: $* ($((SECONDS - START)) s)"; }
die() { echo "test.sh: FAILED: $*" >&2; exit 1; }

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

section "install dependencies"
bash "$HERE/install-deps.sh" || die "install-deps.sh"

section "test rootfs"
SWIFTLET_ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh"
export SWIFTLET_ROOTFS

section "build (debug, static Swift stdlib)"
BIN=$(bash "$HERE/build.sh" debug) || die "build.sh debug"
mkdir -p "$REPO/.build/test-bin"
for product in swiftlet swiftlet-monitor; do
    cp -f "$(dirname "$BIN")/$product" "$REPO/.build/test-bin/$product.tmp"
    mv -f "$REPO/.build/test-bin/$product.tmp" "$REPO/.build/test-bin/$product"
done
export SWIFTLET_BINARY=$REPO/.build/test-bin/swiftlet
export SWIFTLET_MONITOR=$REPO/.build/test-bin/swiftlet-monitor
echo "SWIFTLET_BINARY=$SWIFTLET_BINARY"
echo "SWIFTLET_MONITOR=$SWIFTLET_MONITOR"
echo "SWIFTLET_ROOTFS=$SWIFTLET_ROOTFS"

# criu for the checkpoint/restore tests (system criu, or a newer Debian one in a private prefix).
section "criu"
SWIFTLET_CRIU=$(bash "$HERE/install-criu.sh") || die "install-criu.sh"
export SWIFTLET_CRIU
echo "SWIFTLET_CRIU=$SWIFTLET_CRIU"

FAILED=()
section "format (swift format lint --strict, .swift-format: 4 spaces, 120 columns)"
SWIFT=$(command -v swift || echo /opt/swift/usr/bin/swift)
if ! (cd "$REPO" && "$SWIFT" format lint --strict --recursive Sources Tests Package.swift); then
    FAILED+=("swift format lint")
fi
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

# XCTest only (no Swift Testing tests exist; its runner would print a second "0 tests" summary).
section "swift test"
read -ra TEST_FLAGS <<<"${SWIFT_TEST_FLAGS:-}"
# --disable-local-rpath as in build.sh: the executables swift test relinks are static-PIE (Package.swift).
if ! timeout -k 30 "$((${TEST_TIMEOUT_MIN:-40} * 60))" swift test --disable-swift-testing --disable-local-rpath "${TEST_FLAGS[@]}" 2>&1 |
    tee "$LOGS/swift-test.log"; then
    FAILED+=("swift test")
fi

if [ "${SOAK_CYCLES:-100}" = 0 ]; then
    section "soak: skipped (SOAK_CYCLES=0)"
else
    section "soak (${SOAK_CYCLES:-100} cycles)"
    SWIFTLET=$SWIFTLET_BINARY timeout 600 bash "$HERE/soak.sh" "${SOAK_CYCLES:-100}" 2>&1 | tee "$LOGS/soak.log" ||
        FAILED+=("soak.sh")
fi

if [ "${SKIP_CONTAINERD:-0}" = 1 ]; then
    section "containerd smoke: skipped (SKIP_CONTAINERD=1)"
else
    section "containerd smoke"
    bash "$HERE/containerd-smoke.sh" "$SWIFTLET_BINARY" 2>&1 | tee "$LOGS/smoke.log" || FAILED+=("containerd-smoke.sh")
fi

if [ "${SKIP_PODMAN:-0}" = 1 ]; then
    section "podman end to end: skipped (SKIP_PODMAN=1)"
else
    section "podman end to end (swiftlet-monitor as conmon; swiftlet, runc, crun)"
    bash "$HERE/podman-test.sh" "$SWIFTLET_MONITOR" "$SWIFTLET_BINARY" 2>&1 | tee "$LOGS/podman.log" || FAILED+=("podman-test.sh")
    section "rootless podman end to end (a normal user; swiftlet, runc)"
    bash "$HERE/podman-rootless-test.sh" "$SWIFTLET_MONITOR" "$SWIFTLET_BINARY" 2>&1 | tee "$LOGS/podman-rootless.log" || FAILED+=("podman-rootless-test.sh")
fi

# The same runtime on pure cgroup v2 and an older kernel (6.1: no tmpfs noswap), in a qemu VM.
# FaultTests: the pure-v2 create path (cgroup made before clone3); the concurrent-commands test: PID 1
# reaps at once there, so init vanishes between checks (the 100-container test takes 6 minutes there).
VM_TESTS="IntegrationTests.CgroupIntegrationTests,CgroupsTests.KernelTests,IntegrationTests.MountFeatureTests,IntegrationTests.LifecycleTests,IntegrationTests.MonitorLifecycleTests"
VM_TESTS+=",IntegrationTests.FaultTests,IntegrationTests.ConcurrencyTests/testConcurrentCommandsOnOneContainer"
# Id-mapped tmpfs is refused before 6.3; features lists only what the 6.1 kernel takes.
VM_TESTS+=",IntegrationTests.IDMappedFilesystemTests,IntegrationTests.FeaturesAuditTests"
# Checkpoint/restore with $SWIFTLET_CRIU: 6.1 has soft-dirty bits (this host's kernel has not), so
# pre-dump + final dump (--parent-path) really run there; also cgroup v2 freezing and cg_root.
VM_TESTS+=",IntegrationTests.CheckpointTests,IntegrationTests.MonitorCheckpointTests"
# Rootless containers on pure cgroup v2 (a normal user's cgroups skipped there too; about 5 minutes).
VM_TESTS+=",IntegrationTests.RootlessTests"
XCTEST=$(find -L "$REPO/.build/debug" -maxdepth 1 -name '*.xctest' | head -n 1)
vm_lane() { # LABEL LOG VM-TEST-ARGUMENTS...: one VM lane (Scripts/vm-test.sh), its output in $LOGS/LOG
    local label=$1 log=$2
    shift 2
    if [ -z "$XCTEST" ]; then
        echo "test.sh: no .xctest bundle to run in the VM ($label)"
        FAILED+=("$label")
    elif ! bash "$HERE/vm-test.sh" "$@" 2>&1 | tee "$LOGS/$log"; then
        FAILED+=("$label")
    fi
}
if [ "${SKIP_VM:-0}" = 1 ]; then
    section "vm (cgroup v2, Linux 6.1): skipped (SKIP_VM=1)"
else
    section "vm (cgroup v2, Linux 6.1)"
    vm_lane "vm-test.sh" vm.log --timeout 30m -- "$XCTEST" "$VM_TESTS"
fi

# The systemd cgroup driver against a real systemd (PID 1, D-Bus, pure cgroup v2): the XCTest
# classes, then podman (systemd cgroup manager, journald) and containerd (SystemdCgroup) driving
# swiftlet (Scripts/vm/systemd-clients.sh), in one VM.
# RootlessSystemdTests: the driver on a lingering user's systemd instance (about 100 s).
SYSTEMD_VM_TESTS="IntegrationTests.SystemdCgroupTests,IntegrationTests.SystemdMonitorTests,IntegrationTests.RootlessSystemdTests"
if [ "${SKIP_VM:-0}" = 1 ] || [ "${SKIP_SYSTEMD_VM:-0}" = 1 ]; then
    section "vm with systemd as PID 1: skipped (SKIP_VM=1 or SKIP_SYSTEMD_VM=1)"
else
    section "vm with systemd as PID 1 (systemd cgroup driver, podman, containerd)"
    vm_lane "vm-test.sh --systemd" vm-systemd.log --systemd --timeout 20m -- \
        bash -c 'rc=0; "$1" "$2" || rc=1; bash "$3" || rc=1; exit $rc' sh "$XCTEST" "$SYSTEMD_VM_TESTS" "$HERE/vm/systemd-clients.sh"
    section "vm with systemd as PID 1 on its hybrid cgroup layout"
    vm_lane "vm-test.sh --systemd --hybrid" vm-hybrid.log --systemd --hybrid --timeout 10m -- "$XCTEST" "IntegrationTests.SystemdHybridTests"
fi

# One closing line over all: XCTest's last "Executed N tests, with F failures" plus the smoke and soak steps.
section "done"
count() { # the last XCTest summary of a log: "TOTAL FAILURES SKIPPED"
    local line
    line=$(grep -E "Executed [0-9]+ tests?, with " "$1" 2>/dev/null | tail -n 1 || true)
    [ -n "$line" ] || { echo "0 0 0"; return; }
    local t f s
    t=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$line")
    s=$(grep -oE '[0-9]+ tests? skipped' <<<"$line" | grep -oE '^[0-9]+' || echo 0)
    echo "$t $f $s"
}
read -r total failures skipped < <(count "$LOGS/swift-test.log")
read -r vm_total vm_failures vm_skipped < <(count "$LOGS/vm.log")
read -r sd_total sd_failures sd_skipped < <(count "$LOGS/vm-systemd.log")
read -r hy_total hy_failures hy_skipped < <(count "$LOGS/vm-hybrid.log")
total=$((total + vm_total + sd_total + hy_total - skipped - vm_skipped - sd_skipped - hy_skipped))
failures=$((failures + vm_failures + sd_failures + hy_failures))
skipped=$((skipped + vm_skipped + sd_skipped + hy_skipped))
smoke_pass=$(cat "$LOGS/smoke.log" "$LOGS/podman.log" "$LOGS/podman-rootless.log" "$LOGS/vm-systemd.log" 2>/dev/null | grep -c '^PASS ' || true)
smoke_fail=$(cat "$LOGS/smoke.log" "$LOGS/podman.log" "$LOGS/podman-rootless.log" "$LOGS/vm-systemd.log" 2>/dev/null | grep -c '^FAIL ' || true)
soak_pass=$(grep -c '^soak: PASS' "$LOGS/soak.log" 2>/dev/null || true)
soak_fail=$(grep -c '^soak: FAIL' "$LOGS/soak.log" 2>/dev/null || true)
smoke_pass=$((${smoke_pass:-0} + ${soak_pass:-0}))
smoke_fail=$((${smoke_fail:-0} + ${soak_fail:-0}))
if [ ${#FAILED[@]} -gt 0 ] && [ "$failures" = 0 ] && [ "${smoke_fail:-0}" = 0 ]; then
    failures=1 # a step failed without a test failure (build error, timeout, crash)
fi
[ ${#FAILED[@]} -eq 0 ] || echo "test.sh: FAILED: ${FAILED[*]}"
echo "test.sh: $((total - failures + ${smoke_pass:-0})) passed, $((failures + ${smoke_fail:-0})) failed, $skipped skipped"
[ ${#FAILED[@]} -eq 0 ]
