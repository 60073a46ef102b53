#!/usr/bin/env bash
# bench.sh - swiftlet, crun and runc side by side in one paired run (issue 8's benchmark suite):
# run, the lifecycle phases, userns and Kubernetes-like runs, peak RSS, N monitored containers.
#
#   bash Scripts/bench.sh
#
# Environment (all optional):
#   SWIFTLET=PATH   swiftlet binary to measure; unset: build it with `Scripts/build.sh release`
#                   (a failed build is reported and the other runtimes are still measured)
#   CRUN=PATH       default: `command -v crun`;   RUNC=PATH   default: `command -v runc`
#   CRUN_NEW=PATH, RUNC_NEW=PATH  the newest anchors (crun 1.28, runc 1.3.6 from Debian forky, measured
#                   as crun-new and runc-new); default: /opt/swiftlet-anchors/bin/{crun,runc} when
#                   Scripts/install-anchors.sh has put them there.
#                   Set any of them to "none" to leave it out.
#   RUNS=30         measured rounds;  WARMUP=3 unmeasured rounds;  RSS_RUNS=5 `create` runs for RSS
#   BENCH_HYPERFINE=1  also run hyperfine over the same commands (not paired; 0 to skip)
#   BENCH_SETTLE_MS=0  pause before every measured run (ms), so each starts from a quiet kernel (see slot())
#   BENCH_KEEP_HYBRID=0  see "cgroups" below
#   BENCH_MONITOR=1  then run Scripts/bench-monitor.sh (swiftlet-monitor vs conmon: launch latency,
#                    idle footprint, exec-probe CPU; its knobs LAUNCHES, IDLE, PROBE_SECS); 0 skips it
#   BENCH_SHIM=1    then run Scripts/bench-shim.sh (containerd-shim-swiftlet-v2 vs containerd-shim-runc-v2:
#                    ctr run --rm time, per-shim private memory and threads at 1 and 100 pods); 0 (default) skips
#   BENCH_SYSTEMD=0  1: also `run` with --systemd-cgroup, swiftlet against runc ($RUNC), in the systemd
#                    VM (Scripts/vm-test.sh --systemd running Scripts/bench-systemd.sh; a few minutes,
#                    times under TCG: only the ratio counts); BENCH_SYSTEMD_RUNS=20 rounds there
#   BENCH_SCALE=500  sleeping containers, each with its swiftlet-monitor (0 skips the scale test)
#   BENCH_SCALE_CONMON=0  1: the same scale test with conmon as the monitor, for comparison
#   BENCH_JSON=PATH  results as JSON (default: bench-results.json in the work dir, which is kept then)
#   BENCH_SVG=PATH   grouped bar chart of the medians (default: bench.svg next to the JSON)
#   A smoke form (a minute; not part of Scripts/test.sh): RUNS=2 WARMUP=0 RSS_RUNS=1 BENCH_SCALE=3
#   BENCH_HYPERFINE=0 BENCH_MONITOR=0 bash Scripts/bench.sh
#
# What is measured, paired and alternating (every round runs each runtime once per scenario, the
# order chosen so that each runtime runs after each other one equally often (see slot()); each round gives the ratios swiftlet/crun, swiftlet/runc and
# crun/runc; the report gives medians (p25-p75) of the times and of the per-round ratios). Only compare
# numbers from one run: absolute times drift by 30% here. The container runs /bin/true from the test
# rootfs (Scripts/make-rootfs.sh), terminal false, on a bundle made from `runc spec`:
#   run          wall time of `RT --root STATE run --bundle B ID` (run includes the deletion)
#   create, start, wait, delete   the lifecycle one phase at a time: `create --pid-file`, `start`,
#                the wait until the container's init is a zombie or gone (polled from /proc, every
#                0.5 ms), `delete`; seq = the sum of the four (create+start+wait+delete)
#   userns_run   `run` with a user namespace (uid/gid 0-65535 -> host 100000-165535), rootfs read-only
#   k8s_run      `run` with a typical Kubernetes config: containerd's default masked and read-only
#                paths and 14 capabilities, a seccomp allow-list of ~300 syscalls with default
#                SCMP_ACT_ERRNO (embedded below, like the runtimes' default profiles), a memory
#                (256 MiB), cpu (shares 512, quota 50 ms/100 ms) and pids (1024) limit
# Peak RSS: GNU time's %M of `RT create` (median of RSS_RUNS), when /usr/bin/time is installed.
# Scale: BENCH_SCALE containers running `sleep`, each launched under its own swiftlet-monitor as
# podman launches conmon (sync pipe, exit dir, k8s-file log; then `swiftlet start`): time per
# launch (to the pid on the sync pipe, and to `start` returned) as the median of 10 launches around
# the 1st, the 100th and the Nth; total memory (sum of the monitors' private memory from
# /proc/PID/smaps_rollup, and the drop of MemAvailable from before the first launch); the time to
# stop all (kill, wait for every exit file, delete). Everything is removed on exit, Ctrl-C included.
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
# shellcheck source=bench-stats.sh
. "$HERE/bench-stats.sh"
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
ANCHORS=/opt/swiftlet-anchors/bin
CRUN_NEW_BIN=$(resolve crun-new "${CRUN_NEW-$([ -x $ANCHORS/crun ] && echo $ANCHORS/crun)}")
RUNC_NEW_BIN=$(resolve runc-new "${RUNC_NEW-$([ -x $ANCHORS/runc ] && echo $ANCHORS/runc)}")
[ -n "$CRUN_NEW_BIN$RUNC_NEW_BIN" ] || note "crun 1.28 / runc 1.3.6 not measured (bash Scripts/install-anchors.sh installs them)"

# Re-exec in a private mount namespace without the cgroup2 mount (see header), once.
if [ -z "${BENCH_IN_PRIVATE_NS:-}" ] && [ "${BENCH_KEEP_HYBRID:-0}" != 1 ] && [ -n "$CRUN_BIN$CRUN_NEW_BIN" ] &&
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
[ -n "$CRUN_NEW_BIN" ] && NAMES+=(crun-new) && BINS+=("$CRUN_NEW_BIN")
[ -n "$RUNC_NEW_BIN" ] && NAMES+=(runc-new) && BINS+=("$RUNC_NEW_BIN")

# rt_cmd I: sets CMD to the command line that runs runtime I with its private state root.
rt_cmd() {
    local i=$1
    if [[ "${NAMES[$i]}" == crun* ]] && [ "${BENCH_KEEP_HYBRID:-0}" = 1 ] && hybrid_with_controllers; then
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
    local i f
    declare -F scale_cleanup >/dev/null && scale_cleanup
    for i in "${!NAMES[@]}"; do rt "$i" delete --force "$(cid "$i")" >/dev/null 2>&1 || true; done
    for f in "$WORK"/* "$WORK"/.[!.]*; do # keep only the results
        [ -e "$f" ] || continue
        [ "$f" = "$BENCH_JSON" ] || [ "$f" = "$BENCH_SVG" ] || rm -rf --one-file-system "$f"
    done
    rmdir "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
BENCH_JSON=${BENCH_JSON:-$WORK/bench-results.json}
BENCH_SVG=${BENCH_SVG:-$(dirname "$BENCH_JSON")/bench.svg}
SCALE_IDS=() SCALE_MPIDS=()

# --- the bundles ----------------------------------------------------------------------------
ROOTFS=$(bash "$HERE/make-rootfs.sh") || die "make-rootfs.sh failed"
SPEC=""
for s in "$RUNC_BIN" "$CRUN_BIN" "$(command -v runc || true)" "$(command -v crun || true)"; do
    [ -n "$s" ] && SPEC=$s && break
done
[ -n "$SPEC" ] || die "need runc or crun for \`runc spec\`"
command -v python3 >/dev/null || die "python3 not found"
mkdir -p "$WORK/spec"
(cd "$WORK/spec" && "$SPEC" spec) || die "$SPEC spec failed"
# bundle DIR KIND [ARGS-JSON]: KIND is base, userns or k8s (see the header)
bundle() {
    mkdir -p "$1"
    python3 - "$WORK/spec/config.json" "$1/config.json" "$ROOTFS" "$2" "${3:-[\"/bin/true\"]}" <<'PY'
import json, sys
src, dst, root, kind, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
c = json.load(open(src))
c["root"] = {"path": root, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = args
lx = c["linux"]
if kind == "userns":
    lx["namespaces"].append({"type": "user"})
    lx["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
elif kind == "k8s":
    # containerd 1.6's defaults (oci.WithDefaultSpec + the CRI plugin's capability set)
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    c["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    c["process"]["noNewPrivileges"] = False
    c["hostname"] = "bench-pod"
    lx["maskedPaths"] = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                         "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                         "/sys/firmware", "/sys/devices/virtual/powercap"]
    lx["readonlyPaths"] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    lx.setdefault("resources", {})
    lx["resources"]["memory"] = {"limit": 256 << 20}
    lx["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    lx["resources"]["pids"] = {"limit": 1024}
    # An allow-list in the style of the runtimes' default profiles (x86_64 names).
    allow = """accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown clock_adjtime
    clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup dup2
    dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2
    execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr
    fsetxattr fstat fstatfs fsync ftruncate futex futex_waitv futimesat getcpu getcwd getdents
    getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid
    getpriority getrandom getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname
    getsockopt get_thread_area gettid gettimeofday getuid getxattr inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents ioprio_get
    ioprio_set io_setup io_submit io_uring_enter io_uring_register io_uring_setup kill lchown
    lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise
    membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
    mmap mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap
    msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
    newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
    pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pwrite64
    pwritev pwritev2 read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg
    remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr
    sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    sendfile sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups setitimer setpgid
    setpriority setregid setresgid setresuid setreuid setrlimit set_robust_list setsid setsockopt
    set_thread_area set_tid_address setuid setxattr shmat shmctl shmdt shmget shutdown sigaltstack
    signalfd signalfd4 socket socketpair splice stat statfs statx symlink symlinkat sync
    sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
    timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill truncate
    umask uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid write writev
    arch_prctl modify_ldt chroot clone clone3 personality""".split()
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                             "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                             "syscalls": [{"names": sorted(set(allow)), "action": "SCMP_ACT_ALLOW"}]}
json.dump(c, open(dst, "w"), indent=1)
PY
}
BUNDLE=$WORK/bundle
bundle "$BUNDLE" base
bundle "$WORK/bundle-userns" userns
bundle "$WORK/bundle-k8s" k8s
SECCOMP_N=$(jq '.linux.seccomp.syscalls[0].names | length' "$WORK/bundle-k8s/config.json")

# --- sanity: drop runtimes that cannot run the bundle; note scenarios a runtime cannot run ----
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
declare -A CANT=()
for b in userns k8s; do
    for i in "${!NAMES[@]}"; do
        if ! out=$(rt "$i" run --bundle "$WORK/bundle-$b" "$(cid "$i")" </dev/null 2>&1); then
            CANT[$b,$i]=1
            note "${NAMES[$i]} cannot run the $b bundle, left out of ${b}_run: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
            rt "$i" delete --force "$(cid "$i")" >/dev/null 2>&1 || true
        fi
    done
done

echo "# bench $(date -u +%FT%TZ) kernel=$(uname -r) cores=$(nproc) runs=$RUNS warmup=$WARMUP" \
    "cgroups=$(if [ -n "${BENCH_IN_PRIVATE_NS:-}" ]; then echo "v1 (private mount ns, unified unmounted)"; elif hybrid_with_controllers; then echo hybrid; else echo host; fi)"
for i in "${!NAMES[@]}"; do
    echo "# ${NAMES[$i]}: ${BINS[$i]} ($("${BINS[$i]}" --version 2>&1 | head -n 1 || true))"
done
echo "# k8s bundle: seccomp allow-list of $SECCOMP_N syscalls, default SCMP_ACT_ERRNO"

# --- paired timing --------------------------------------------------------------------------
ERR=$WORK/errors.log
mkfifo "$WORK/nap"
exec {NAPFD}<>"$WORK/nap" # read -t on a silent fifo: a sleep without a fork
run_one() { # I BUNDLE -> LAST (microseconds); 1 on failure
    local t0 t1 id
    id=$(cid "$1")
    t0=${EPOCHREALTIME/./}
    if ! rt "$1" run --bundle "$2" "$id" </dev/null >/dev/null 2>>"$ERR" {NAPFD}>&-; then
        rt "$1" delete --force "$id" >/dev/null 2>&1 || true
        return 1
    fi
    t1=${EPOCHREALTIME/./}
    LAST=$((t1 - t0))
}
# phases_one I -> P_CREATE P_START P_WAIT P_DELETE (microseconds); 1 on failure
phases_one() {
    local t0 t1 t2 t3 t4 id pid s
    id=$(cid "$1")
    rm -f "$WORK/pid"
    t0=${EPOCHREALTIME/./}
    rt "$1" create --bundle "$BUNDLE" --pid-file "$WORK/pid" "$id" </dev/null >/dev/null 2>>"$ERR" {NAPFD}>&- || {
        rt "$1" delete --force "$id" >/dev/null 2>&1; return 1; }
    t1=${EPOCHREALTIME/./}
    rt "$1" start "$id" </dev/null >/dev/null 2>>"$ERR" {NAPFD}>&- || { rt "$1" delete --force "$id" >/dev/null 2>&1; return 1; }
    t2=${EPOCHREALTIME/./}
    read -r pid <"$WORK/pid"
    for ((n = 0; n < 20000; n++)); do # init is reaped late here (PID 1 reaps lazily): Z counts as exited
        s=""
        { read -r s <"/proc/$pid/stat"; } 2>/dev/null || break
        s=${s##*) }
        [ "${s%% *}" = Z ] && break
        read -r -t 0.0005 -u "$NAPFD" s || true
    done
    t3=${EPOCHREALTIME/./}
    rt "$1" delete "$id" </dev/null >/dev/null 2>>"$ERR" {NAPFD}>&- || { rt "$1" delete --force "$id" >/dev/null 2>&1; return 1; }
    t4=${EPOCHREALTIME/./}
    P_CREATE=$((t1 - t0)) P_START=$((t2 - t1)) P_WAIT=$((t3 - t2)) P_DELETE=$((t4 - t3))
}
K=${#NAMES[@]}
declare -A FAILS=()
record_round() { # METRIC : from the associative array T (runtime index -> us)
    local m=$1 i j
    for i in "${!T[@]}"; do echo "${T[$i]}" >>"$WORK/t.$m.${NAMES[$i]}"; done
    for ((i = 0; i < K; i++)); do
        for ((j = i + 1; j < K; j++)); do
            [ -n "${T[$i]:-}" ] && [ -n "${T[$j]:-}" ] || continue
            awk -v a="${T[$i]}" -v b="${T[$j]}" 'BEGIN { printf "%.4f\n", a / b }' >>"$WORK/r.$m.${NAMES[$i]}-${NAMES[$j]}"
        done
    done
}
# slot ROUND J: the runtime that runs J-th in round ROUND. Each runtime must run after each other
# one equally often: what the previous run leaves behind (its network namespace torn down by a
# kernel worker, the cgroup attach lock's RCU state) changes the next run's time by up to 5 ms
# (runc's leftovers cost most), so plain rotation, where each runtime always followed the same other
# one, biased the ratios by up to 0.3. Rounds alternate 0,1,2 and 0,2,1: in the stream of runs
# 0 1 2 0 2 1 0 1 2 ... every ordered pair occurs once per two rounds (with two runtimes, 0 1 0 1).
# BENCH_SETTLE_MS=N sleeps N ms before every run instead, so each starts from a quiet kernel.
slot() {
    if (($1 % 2)) && (($2 > 0)); then echo $((K - $2)); else echo "$2"; fi
}
settle() { [ "${BENCH_SETTLE_MS:-0}" = 0 ] || sleep "$(awk -v m="$BENCH_SETTLE_MS" 'BEGIN { print m / 1000 }')"; }
paired_run() { # METRIC BUNDLE-KIND
    local m=$1 b=$2 bd r j i ok
    bd=$BUNDLE
    [ "$b" = base ] || bd=$WORK/bundle-$b
    note "timing $m ($WARMUP warm-up + $RUNS paired rounds)..."
    for ((r = 0; r < WARMUP; r++)); do
        for ((i = 0; i < K; i++)); do [ -n "${CANT[$b,$i]:-}" ] || run_one "$i" "$bd" || true; done
    done
    for ((r = 0; r < RUNS; r++)); do
        declare -A T=()
        ok=1
        for ((j = 0; j < K; j++)); do
            i=$(slot "$r" "$j")
            [ -z "${CANT[$b,$i]:-}" ] || continue
            settle
            if run_one "$i" "$bd"; then T[$i]=$LAST; else ok=0; FAILS[$m]=$((${FAILS[$m]:-0} + 1)); fi
        done
        [ $ok = 1 ] && record_round "$m"
        unset T
    done
}
paired_phases() {
    local r j i ok ph
    note "timing create/start/wait/delete ($WARMUP warm-up + $RUNS paired rounds)..."
    for ((r = 0; r < WARMUP; r++)); do for ((i = 0; i < K; i++)); do phases_one "$i" || true; done; done
    for ((r = 0; r < RUNS; r++)); do
        declare -A PC=() PS=() PW=() PD=() PQ=()
        ok=1
        for ((j = 0; j < K; j++)); do
            i=$(slot "$r" "$j")
            settle
            if phases_one "$i"; then
                # shellcheck disable=SC2034 # read through the nameref SRC below
                PC[$i]=$P_CREATE PS[$i]=$P_START PW[$i]=$P_WAIT PD[$i]=$P_DELETE
                # shellcheck disable=SC2034
                PQ[$i]=$((P_CREATE + P_START + P_WAIT + P_DELETE))
            else ok=0; FAILS[seq]=$((${FAILS[seq]:-0} + 1)); fi
        done
        if [ $ok = 1 ]; then
            for ph in create:PC start:PS wait:PW delete:PD seq:PQ; do
                declare -n SRC=${ph#*:}
                declare -A T=()
                for i in "${!SRC[@]}"; do T[$i]=${SRC[$i]}; done
                record_round "${ph%%:*}"
                unset T
                unset -n SRC
            done
        fi
        unset PC PS PW PD PQ
    done
}
paired_run run base
paired_phases
[ -n "$(for i in "${!NAMES[@]}"; do [ -z "${CANT[userns,$i]:-}" ] && echo y; done)" ] && paired_run userns_run userns
[ -n "$(for i in "${!NAMES[@]}"; do [ -z "${CANT[k8s,$i]:-}" ] && echo y; done)" ] && paired_run k8s_run k8s


# --- peak RSS of create ---------------------------------------------------------------------
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
    done
else
    note "/usr/bin/time missing (apt-get install time): no RSS numbers"
fi

for m in "${!FAILS[@]}"; do
    note "$m: ${FAILS[$m]} failed runs (rounds with a failure are dropped)"
done
[ ${#FAILS[@]} -gt 0 ] && { note "last errors:"; tail -n 3 "$ERR" | sed 's/^/    /' >&2; }
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
        if [[ "${NAMES[$i]}" == crun* ]] && [ "${BENCH_KEEP_HYBRID:-0}" = 1 ] && hybrid_with_controllers; then
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
# --- scale: N sleeping containers, each with its monitor ------------------------------------------
# scale_launch MON-BIN ID -> S_CREATED S_RUNNING (us), S_MPID; as bench-monitor.sh's launch: podman's way
scale_launch() {
    local mon=$1 id=$2 d=$SCALE_DIR/$2 t0 t2 t3 line
    mkdir -p "$d/exits" "$d/bundle"
    cp "$SCALE_DIR/config.json" "$d/bundle/config.json"
    mkfifo "$d/sync"
    exec 3<>"$d/sync"
    SCALE_IDS+=("$id")
    t0=${EPOCHREALTIME/./}
    _OCI_SYNCPIPE=3 "$mon" --api-version 1 -c "$id" -u "$id" -n "$id" -r "$SWIFTLET_BIN" -b "$d/bundle" \
        -p "$d/ctr.pid" -P "$d/mon.pid" --exit-dir "$d/exits" -l "k8s-file:$d/ctr.log" --full-attach \
        --runtime-arg "--root=$SCALE_STATE" </dev/null >/dev/null 2>>"$ERR" {NAPFD}>&- || {
        exec 3>&-; note "scale: $id: monitor failed"; return 1; }
    read -r -t 30 line <&3 || { exec 3>&-; note "scale: $id: no answer on the sync pipe"; return 1; }
    t2=${EPOCHREALTIME/./}
    exec 3>&-
    rm -f "$d/sync"
    [[ $line == *'"data":'* && $line != *'"data": -1'* && $line != *'"data":-1'* ]] ||
        { note "scale: $id: create failed: $line"; return 1; }
    "$SWIFTLET_BIN" --root "$SCALE_STATE" start "$id" 2>>"$ERR" {NAPFD}>&- || { note "scale: $id: start failed"; return 1; }
    t3=${EPOCHREALTIME/./}
    read -r S_MPID <"$d/mon.pid"
    SCALE_MPIDS+=("$S_MPID")
    S_CREATED=$((t2 - t0)) S_RUNNING=$((t3 - t0))
}
scale_cleanup() {
    local id p
    for id in "${SCALE_IDS[@]}"; do "$SWIFTLET_BIN" --root "$SCALE_STATE" delete --force "$id" >/dev/null 2>&1 || true; done
    for p in "${SCALE_MPIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done # only monitors we started
    SCALE_IDS=() SCALE_MPIDS=()
}
mem_avail() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
window_median() { # FILE FROM TO (1-based line numbers, clamped) -> median in ms
    awk -v a="$2" -v b="$3" 'NR >= a && NR <= b' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "null"; exit }
               printf "%.2f\n", ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1000 }'
}
scale_run() { # LABEL MON-BIN
    local label=$1 mon=$2 n ma0 ma1 t0 t1 id left=0 priv w
    SCALE_DIR=$WORK/scale-$label SCALE_STATE=$WORK/scale-$label/state
    mkdir -p "$SCALE_DIR"
    jq '.process.args = ["sleep", "100000"]' "$BUNDLE/config.json" >"$SCALE_DIR/config.json"
    : >"$WORK/scale.$label.created"; : >"$WORK/scale.$label.running"
    note "scale: launching $SCALE_N containers under $label..."
    sync; sleep 2
    ma0=$(mem_avail)
    for ((n = 1; n <= SCALE_N; n++)); do
        scale_launch "$mon" "bs-$$-$label-$n" || { note "scale: stopped at $((n - 1)) containers"; break; }
        echo "$S_CREATED" >>"$WORK/scale.$label.created"
        echo "$S_RUNNING" >>"$WORK/scale.$label.running"
    done
    n=${#SCALE_MPIDS[@]}
    sleep 2
    ma1=$(mem_avail)
    # the monitors' private memory (what each extra container costs; their text is shared)
    priv=$(for p in "${SCALE_MPIDS[@]}"; do echo "/proc/$p/smaps_rollup"; done |
        xargs awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' 2>/dev/null)
    note "scale: stopping $n containers..."
    t0=${EPOCHREALTIME/./}
    for id in "${SCALE_IDS[@]}"; do "$SWIFTLET_BIN" --root "$SCALE_STATE" kill "$id" KILL >/dev/null 2>&1 || true; done
    for ((w = 0; w < 6000; w++)); do # up to 60 s for every exit file
        left=0
        for id in "${SCALE_IDS[@]}"; do [ -s "$SCALE_DIR/$id/exits/$id" ] || { left=1; break; }; done
        [ $left = 0 ] && break
        read -r -t 0.01 -u "$NAPFD" _ || true
    done
    for id in "${SCALE_IDS[@]}"; do "$SWIFTLET_BIN" --root "$SCALE_STATE" delete "$id" >/dev/null 2>&1 || true; done
    t1=${EPOCHREALTIME/./}
    local c=$WORK/scale.$label.created r=$WORK/scale.$label.running mid=$((SCALE_N < 100 ? SCALE_N : 100))
    jq -n --arg mon "$label" --argjson left "$left" --argjson n "$n" --argjson priv "$priv" --argjson ma0 "$ma0" --argjson ma1 "$ma1" \
        --argjson stop_ms "$(((t1 - t0) / 1000))" \
        --argjson c1 "$(window_median "$c" 1 10)" --argjson c100 "$(window_median "$c" $((mid - 4)) $((mid + 5)))" \
        --argjson cn "$(window_median "$c" $((n - 9)) "$n")" \
        --argjson r1 "$(window_median "$r" 1 10)" --argjson r100 "$(window_median "$r" $((mid - 4)) $((mid + 5)))" \
        --argjson rn "$(window_median "$r" $((n - 9)) "$n")" '{
            monitor: $mon, containers: $n, exits_missing: ($left != 0),
            monitors_private_kib_total: $priv, monitor_private_kib_each: (if $n > 0 then ($priv / $n * 10 | round / 10) else null end),
            memavailable_drop_kib: ($ma0 - $ma1), memavailable_drop_kib_per_container: (if $n > 0 then (($ma0 - $ma1) / $n | round) else null end),
            launch_to_created_ms: {"1": $c1, "100": $c100, "N": $cn},
            launch_to_running_ms: {"1": $r1, "100": $r100, "N": $rn},
            stop_all_ms: $stop_ms, stop_per_container_ms: (if $n > 0 then ($stop_ms / $n * 100 | round / 100) else null end)
        }' >"$WORK/scale.$label.json"
    scale_cleanup
}
SCALE_N=${BENCH_SCALE:-500} SCALE_IDS=() SCALE_MPIDS=()
if [ "$SCALE_N" -gt 0 ] && [ -n "$SWIFTLET_BIN" ]; then
    # two processes per container (monitor and sleep) plus the transient runtime processes
    procs=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l) pidmax=$(cat /proc/sys/kernel/pid_max)
    if [ $((procs + 3 * SCALE_N + 100)) -gt "$pidmax" ]; then
        SCALE_N=$(((pidmax - procs - 100) / 3))
        note "scale: pid_max $pidmax and $procs processes: BENCH_SCALE lowered to $SCALE_N"
    fi
    MONITOR_BIN=$(dirname "$SWIFTLET_BIN")/swiftlet-monitor
    if [ -x "$MONITOR_BIN" ]; then scale_run swiftlet-monitor "$MONITOR_BIN"; else note "scale: no $MONITOR_BIN"; fi
    if [ "${BENCH_SCALE_CONMON:-0}" = 1 ]; then
        if command -v conmon >/dev/null; then scale_run conmon "$(command -v conmon)"; else note "scale: conmon not found"; fi
    fi
fi

# --- the monitor, side by side with conmon --------------------------------------------------------
if [ "${BENCH_MONITOR:-1}" = 1 ] && [ -n "$SWIFTLET_BIN" ]; then
    echo
    BENCH_MONITOR_OUT=$WORK/monitor.kv SWIFTLET=$SWIFTLET_BIN MONITOR=$(dirname "$SWIFTLET_BIN")/swiftlet-monitor \
        bash "$HERE/bench-monitor.sh" {NAPFD}>&- || note "bench-monitor.sh failed"
fi

# --- the containerd shim, side by side with containerd-shim-runc-v2 -------------------------------
if [ "${BENCH_SHIM:-0}" = 1 ] && [ -n "$SWIFTLET_BIN" ]; then
    echo
    SWIFTLET=$SWIFTLET_BIN bash "$HERE/bench-shim.sh" {NAPFD}>&- || note "bench-shim.sh failed"
fi

if [ "${BENCH_SYSTEMD:-0}" = 1 ] && [ -n "$SWIFTLET_BIN" ] && [ -n "$RUNC_BIN" ]; then
    echo
    mkdir -p "$WORK/systemd"
    SWIFTLET_BINARY=$SWIFTLET_BIN SWIFTLET_ROOTFS=$ROOTFS bash "$HERE/vm-test.sh" --systemd --out "$WORK/systemd" \
        -e RUNS="${BENCH_SYSTEMD_RUNS:-20}" -e RUNC="$RUNC_BIN" -e BENCH_SYSTEMD_OUT=/vm-out/systemd.kv \
        -- bash "$HERE/bench-systemd.sh" {NAPFD}>&- || note "bench-systemd.sh in the systemd VM failed"
fi

# --- results: table, JSON, SVG --------------------------------------------------------------------
echo
python3 - "$WORK" "$BENCH_JSON" "$BENCH_SVG" "$RUNS" "$SECCOMP_N" "${NAMES[@]}" <<'PY'
import glob, json, os, sys, time
work, jpath, spath, runs, seccomp_n, names = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]

def q(vals):  # the same quantiles as bench.sh's stats(): median, p25, p75 (lower), n
    v = sorted(vals); n = len(v)
    if n == 0: return None
    m = v[(n - 1) // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"median": m, "p25": v[int((n - 1) * 0.25)], "p75": v[int((n - 1) * 0.75)], "n": n}

def read(p, scale=1.0):
    try: return [float(l) / scale for l in open(p) if l.strip()]
    except FileNotFoundError: return []

def rnd(d, k):
    return None if d is None else {x: (round(y, k) if x != "n" else y) for x, y in d.items()}

metrics = [("run", "run /bin/true"), ("create", "create"), ("start", "start"), ("wait", "wait for exit"),
           ("delete", "delete"), ("seq", "create+start+wait+delete"), ("userns_run", "run, user namespace"),
           ("k8s_run", "run, Kubernetes-like config")]
res = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kernel": os.uname().release,
       "cores": os.cpu_count(), "rounds": runs, "k8s_seccomp_allowed_syscalls": seccomp_n,
       "unit": "ms", "metrics": {}, "create_peak_rss_mib": {}, "hyperfine_run_ms": {}, "scale": [], "monitor": {}}
for m, label in metrics:
    e = {"label": label, "runtimes": {}, "ratios": {}}
    for rt in names:
        s = q(read(f"{work}/t.{m}.{rt}", 1000.0))
        if s: e["runtimes"][rt] = rnd(s, 3)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s = q(read(f"{work}/r.{m}.{a}-{b}"))
            if s: e["ratios"][f"{a}/{b}"] = rnd(s, 3)
    if e["runtimes"]: res["metrics"][m] = e
for rt in names:
    s = q(read(f"{work}/rss.{rt}", 1024.0))
    if s: res["create_peak_rss_mib"][rt] = rnd(s, 2)
if os.path.exists(f"{work}/hf.json"):
    for r in json.load(open(f"{work}/hf.json"))["results"]:
        res["hyperfine_run_ms"][r["command"]] = {"median": round(r["median"] * 1000, 3), "mean": round(r["mean"] * 1000, 3),
                                                "stddev": round(r["stddev"] * 1000, 3)}
for p in sorted(glob.glob(f"{work}/scale.*.json")):
    res["scale"].append(json.load(open(p)))
if os.path.exists(f"{work}/monitor.kv"):
    for l in open(f"{work}/monitor.kv"):
        k, _, v = l.strip().partition(" ")
        try: v = float(v)
        except ValueError: pass
        res["monitor"][k] = v
if os.path.exists(f"{work}/systemd/systemd.kv"):
    res["systemd_run"] = {}
    for l in open(f"{work}/systemd/systemd.kv"):
        k, _, v = l.strip().partition(" ")
        try: v = float(v)
        except ValueError: pass
        res["systemd_run"][k] = v
json.dump(res, open(jpath, "w"), indent=1)

# the table (markdown, as Spec/benchmarks.md carries it)
def cell(d): return "n/a" if d is None else f"{d['median']:.2f} ({d['p25']:.2f}-{d['p75']:.2f})"
def rcell(d): return "n/a" if d is None else f"{d['median']:.3f} ({d['p25']:.3f}-{d['p75']:.3f})"
pairs = [f"swiftlet/{b}" for b in names if b != "swiftlet"] if "swiftlet" in names else []
print(f"median (p25-p75) of {runs} paired rounds, ms; ratios are medians of per-round ratios")
print("| metric | " + " | ".join(names) + " | " + " | ".join(pairs) + " |")
print("|---" * (1 + len(names) + len(pairs)) + "|")
for m, label in metrics:
    e = res["metrics"].get(m)
    if not e: continue
    print(f"| {label} | " + " | ".join(cell(e["runtimes"].get(rt)) for rt in names) + " | "
          + " | ".join(rcell(e["ratios"].get(p)) for p in pairs) + " |")
if res["create_peak_rss_mib"]:
    print("| create peak RSS, MiB | " + " | ".join(cell(res["create_peak_rss_mib"].get(rt)) for rt in names)
          + " | " + " | ".join("" for _ in pairs) + " |")
sd = res.get("systemd_run")
if sd and "ratio_swiftlet_runc" in sd:
    print(f"\nrun --systemd-cgroup in the systemd VM (TCG), {sd['runs']:.0f} paired rounds: swiftlet {sd['swiftlet_ms']} ms, "
          f"runc {sd['runc_ms']} ms (medians); swiftlet/runc {sd['ratio_swiftlet_runc']:.2f}")
for s in res["scale"]:
    print(f"\nscale, {s['monitor']}: {s['containers']} sleeping containers: monitors' private memory "
          f"{s['monitors_private_kib_total'] / 1024:.1f} MiB ({s['monitor_private_kib_each']} KiB each); "
          f"MemAvailable drop {s['memavailable_drop_kib'] / 1024:.1f} MiB ({s['memavailable_drop_kib_per_container']} KiB per container); "
          f"launch to created [ms] #1 {s['launch_to_created_ms']['1']}, #100 {s['launch_to_created_ms']['100']}, "
          f"#N {s['launch_to_created_ms']['N']}; to running #1 {s['launch_to_running_ms']['1']}, "
          f"#100 {s['launch_to_running_ms']['100']}, #N {s['launch_to_running_ms']['N']}; "
          f"stop all {s['stop_all_ms'] / 1000:.1f} s ({s['stop_per_container_ms']} ms each)")

# the chart: grouped bars of the medians (with p25-p75 whiskers)
groups = [(m, l) for m, l in [("run", "run"), ("seq", "create+start+wait+delete"), ("userns_run", "run, userns"),
          ("k8s_run", "run, k8s config")] if m in res["metrics"]]
colors = {"swiftlet": "#f05138", "crun": "#4e79a7", "runc": "#59a14f", "crun-new": "#9ecae9", "runc-new": "#a6d96a"}
W, H, L, T, B = 720, 360, 60, 40, 60
vmax = max([e["p75"] for m, _ in groups for e in res["metrics"][m]["runtimes"].values()] + [1])
step = 10 ** len(str(int(vmax))) / 10
while vmax / step > 10: step *= 2
while vmax / step < 4: step /= 2
top = step * (int(vmax / step) + 1)
ph = H - T - B
gw = (W - L - 20) / max(len(groups), 1)
bw = gw * 0.7 / max(len(names), 1)
y = lambda v: T + ph - v / top * ph
o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">median wall time, ms (p25-p75 whiskers), {runs} paired rounds, {res["date"][:10]}</text>']
v = 0.0
while v <= top + 1e-9:
    o.append(f'<line x1="{L}" x2="{W - 20}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    o.append(f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    v += step
for gi, (m, label) in enumerate(groups):
    x0 = L + gi * gw + gw * 0.15
    for ri, rt in enumerate(names):
        e = res["metrics"][m]["runtimes"].get(rt)
        if not e: continue
        x = x0 + ri * bw
        o.append(f'<rect x="{x:.1f}" y="{y(e["median"]):.1f}" width="{bw * 0.9:.1f}" height="{y(0) - y(e["median"]):.1f}" fill="{colors.get(rt, "#999")}"/>')
        cx = x + bw * 0.45
        o.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(e["p25"]):.1f}" y2="{y(e["p75"]):.1f}" stroke="black"/>')
        o.append(f'<text x="{cx:.1f}" y="{y(e["p75"]) - 4:.1f}" text-anchor="middle" font-size="10">{e["median"]:.1f}</text>')
    o.append(f'<text x="{L + gi * gw + gw / 2:.1f}" y="{H - B + 18}" text-anchor="middle">{label}</text>')
for ri, rt in enumerate(names):
    x = L + ri * 110
    o.append(f'<rect x="{x}" y="{H - 24}" width="12" height="12" fill="{colors.get(rt, "#999")}"/><text x="{x + 16}" y="{H - 14}">{rt}</text>')
o.append('</svg>')
open(spath, "w").write("\n".join(o) + "\n")
PY
echo
echo "results: $BENCH_JSON"
echo "chart:   $BENCH_SVG"
exit 0
