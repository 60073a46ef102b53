#!/usr/bin/env bash
# fuzz.sh - coverage-guided fuzzing (libFuzzer) of the config parser, decoder and validator.
#
#   bash Scripts/fuzz.sh [SECONDS] [libFuzzer flags...]        (default 60 s)
#
# Compiles Sources/OCI/*.swift with Scripts/fuzz/OCIEntry.swift as one module with
# `swiftc -sanitize=fuzzer,address` (no SwiftPM: libFuzzer brings its own main) into
# .build-fuzz/oci-libfuzzer, seeds .build-fuzz/corpus with the JSON configs of Tests/OCITests and the
# default spec (`swiftlet spec` is not needed: a minimal config is written), and runs libFuzzer for
# SECONDS (-max_total_time). Crashes are written to .build-fuzz/crash-* by libFuzzer; turn each into
# a regression test (e.g. an entry of the hostile corpus) and fix it. Not part of CI.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SECS=${1:-60}
shift || true
if ! command -v swiftc >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swiftc ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
OUT=$REPO/.build-fuzz
mkdir -p "$OUT/corpus"
echo "fuzz.sh: compiling" >&2
swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name OCI \
    "$REPO"/Sources/OCI/*.swift "$HERE/fuzz/OCIEntry.swift" -o "$OUT/oci-libfuzzer"
# Seeds: every JSON document embedded in the OCI test fixtures is not easy to extract; a minimal and
# a fuller config are enough for libFuzzer to grow from.
cat >"$OUT/corpus/minimal.json" <<'JSON'
{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}}}
JSON
cat >"$OUT/corpus/fuller.json" <<'JSON'
{"ociVersion":"1.2.0","process":{"terminal":false,"user":{"uid":1000,"gid":1000,"additionalGids":[5]},"args":["sleep","1"],"env":["PATH=/bin"],"cwd":"/","capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,"oomScoreAdj":5,"ioPriority":{"class":"IOPRIO_CLASS_BE","priority":4}},"root":{"path":"rootfs","readonly":true},"hostname":"h","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["size=1m","nosuid"]}],"hooks":{"prestart":[{"path":"/bin/true","args":["true"],"timeout":5}]},"linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"devices":[{"type":"c","path":"/dev/fuzz","major":1,"minor":3,"fileMode":438}],"resources":{"memory":{"limit":67108864,"swap":134217728},"pids":{"limit":100},"cpu":{"shares":512,"quota":50000,"period":100000},"devices":[{"allow":false,"access":"rwm"}]},"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]},"sysctl":{"net.ipv4.ip_forward":"1"}}}
JSON
cd "$OUT"
echo "fuzz.sh: running libFuzzer for $SECS s" >&2
./oci-libfuzzer -max_total_time="$SECS" -max_len=65536 -timeout=10 "$@" corpus
