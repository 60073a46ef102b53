#!/usr/bin/env bash
# vm-test.sh - run a command inside a qemu VM (TCG) that boots Debian's own kernel on a copy-on-write
# view of this machine's filesystem, with pure cgroup v2. See Spec/testing.md, "VM tests".
#
#   bash Scripts/vm-test.sh [OPTIONS] [--] COMMAND [ARG]...
#   bash Scripts/vm-test.sh [--kernel 6.12] --prepare      (download/build the cache only)
#
# Options (environment variable in brackets):
#   --kernel 6.1|6.12   kernel series [VM_KERNEL, default 6.1]: the newest linux-image-6.1.0-NN-amd64
#                       of bookworm, or the newest linux-image-6.12.NN+deb12-amd64 (bookworm-security)
#                       or 6.12.NN+bpo-amd64 (bookworm-backports, if that apt source is configured).
#                       VM_KERNEL_PACKAGE=linux-image-... pins an exact package of the series.
#   -e NAME=VALUE       set NAME in the guest's environment; -e NAME passes the host's value.
#   --out DIR           host directory shared writable as /vm-out (VM_OUT in the guest) [VM_OUT_DIR;
#                       default: a temporary directory, removed at exit].
#   --keep PATH         host PATH under /tmp or /run stays visible in the guest (copy-on-write), though
#                       the guest gets fresh tmpfs there. Automatic for the working directory and for
#                       SWIFTLET_BINARY / SWIFTLET_ROOTFS.
#   --timeout DUR       kill the VM after DUR (sleep(1) syntax: 1200, 20m, 1h) [VM_TIMEOUT, default 20m].
#   --cpus N, --mem MiB vCPUs and RAM [VM_CPUS=2, VM_MEM=4096].
#   --prepare           install packages, fetch the kernel and build the initramfs; do not boot.
#   --systemd           boot Debian's systemd as PID 1 (pure cgroup v2, D-Bus) and run COMMAND as its
#                       unit vm-test.service [VM_SYSTEMD=1].
#   --hybrid            with --systemd: systemd mounts the hybrid cgroup layout (v1 controllers,
#                       cgroup2 without controllers at /sys/fs/cgroup/unified) instead of pure v2
#                       (systemd.unified_cgroup_hierarchy=0) [VM_HYBRID=1].
# Guest environment: PATH (incl. /opt/swift/usr/bin), HOME=/root, VM_OUT=/vm-out, VM_TEST=1, every
# SWIFTLET_* variable of the caller, every VM_ENV_NAME=VALUE as NAME=VALUE, and the -e flags.
# Exit status: COMMAND's; 124 on timeout; 125 when the VM could not run COMMAND at all.
# Cache: VM_CACHE (default /var/cache/swiftlet-vm): unpacked kernels and their initramfs images.
# Also: VM_KERNEL_ARGS (appended to the kernel command line; "vmtest.debug" times the guest's setup),
# VM_QBOOT=0 / VM_PVH=0 (SeaBIOS / boot the bzImage instead), VM_QEMU_CPU (default max).
set -euo pipefail
set -E
trap '[ "$BASH_SUBSHELL" != 0 ] || echo "vm-test: internal error: line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT_SH=$HERE/vm/init.sh
INITRD_LAYOUT=1
# In the order the brief lists them; each one's own dependencies (from its modinfo) load first.
# The guest has no modprobe (and no modules.dep), so the kernel cannot load a module on demand.
MODULES=(virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache
    9pnet 9pnet_virtio 9p overlay)
# CRIU (checkpoint/restore tests): sock_diag of every socket family it dumps; nf_tables for its
# network lock (criu 4.2 locks through libnftables) and the iptables-nft tools it runs
# (crc32c_generic first: nf_tables needs libcrc32c, whose soft dependency "crc32c" is not followed);
# nf_conntrack_netlink for the conntrack dump of a network namespace (else: "-22 reported by
# netlink"); veth and tun, which criu's kerndat probes (link nsid with a veth pair, tun's netns ioctl).
MODULES+=(unix_diag netlink_diag inet_diag tcp_diag udp_diag raw_diag af_packet_diag crc32c_generic
    nf_tables nf_conntrack_netlink veth tun)
GUEST_PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "vm-test: $*" >&2; }
die() { echo "vm-test: error: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

KERNEL_SERIES=${VM_KERNEL:-6.1}
CACHE=${VM_CACHE:-/var/cache/swiftlet-vm}
TIMEOUT=${VM_TIMEOUT:-20m}
CPUS=${VM_CPUS:-2}
MEM=${VM_MEM:-4096}
OUT_DIR=${VM_OUT_DIR:-}
PREPARE=0
SYSTEMD=${VM_SYSTEMD:-0}
HYBRID=${VM_HYBRID:-0}
EXTRA_ENV=()
KEEP=()

while [ $# -gt 0 ]; do
    case $1 in
    --kernel) [ $# -ge 2 ] || die "--kernel needs 6.1 or 6.12"; KERNEL_SERIES=$2; shift 2 ;;
    --kernel=*) KERNEL_SERIES=${1#*=}; shift ;;
    -e | --env) [ $# -ge 2 ] || die "$1 needs NAME=VALUE or NAME"; EXTRA_ENV+=("$2"); shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT_DIR=$2; shift 2 ;;
    --keep) [ $# -ge 2 ] || die "--keep needs a path"; KEEP+=("$2"); shift 2 ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs a duration"; TIMEOUT=$2; shift 2 ;;
    --cpus) [ $# -ge 2 ] || die "--cpus needs a number"; CPUS=$2; shift 2 ;;
    --mem) [ $# -ge 2 ] || die "--mem needs MiB"; MEM=$2; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    --systemd) SYSTEMD=1; shift ;;
    --hybrid) HYBRID=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
    esac
done
[ "$PREPARE" = 1 ] || [ $# -gt 0 ] || { usage >&2; die "no COMMAND given"; }
[ "$HYBRID" = 0 ] || [ "$SYSTEMD" = 1 ] || die "--hybrid needs --systemd (systemd mounts the hybrid layout)"
case $KERNEL_SERIES in 6.1 | 6.12) ;; *) die "--kernel must be 6.1 or 6.12, not '$KERNEL_SERIES'" ;; esac
[[ $TIMEOUT =~ ^[0-9]+(\.[0-9]+)?[smhd]?$ ]] || die "VM_TIMEOUT/--timeout '$TIMEOUT' is not a duration (1200, 20m, 1h)"
[[ $CPUS =~ ^[1-9][0-9]*$ ]] || die "VM_CPUS/--cpus '$CPUS' is not a number"
[[ $MEM =~ ^[1-9][0-9]*$ ]] || die "VM_MEM/--mem '$MEM' is not a number of MiB"
[ "$(id -u)" = 0 ] || die "run as root (apt-get, and qemu's 9p passthrough of / needs root)"
[ -f "$INIT_SH" ] || die "$INIT_SH is missing"

T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------- packages
APT_LOG=
apt_quiet() { # apt_quiet ARGS... : run apt-get, show its log only on failure
    APT_LOG=$(mktemp)
    if DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$APT_LOG" 2>&1 </dev/null; then
        rm -f "$APT_LOG"; return 0
    fi
    return 1
}
apt_fail() { cat "$APT_LOG" >&2; rm -f "$APT_LOG"; die "$*"; }

APT_UPDATED=0
apt_update() { # once per run
    [ "$APT_UPDATED" = 0 ] || return 0
    say "apt-get update"
    apt_quiet update || apt_fail "apt-get update failed"
    APT_UPDATED=1
}

install_pkgs() {
    [ $# -gt 0 ] || return 0
    say "installing $*"
    if ! apt_quiet install -y --no-install-recommends "$@"; then
        rm -f "$APT_LOG"
        apt_update
        apt_quiet install -y --no-install-recommends "$@" || apt_fail "apt-get install $* failed"
    fi
}

is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }

ensure_host_tools() {
    local need=()
    command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
    command -v cpio >/dev/null 2>&1 || need+=(cpio)
    command -v flock >/dev/null 2>&1 || need+=(util-linux)
    is_static /bin/busybox || need+=(busybox-static)
    install_pkgs "${need[@]}"
    is_static /bin/busybox || die "/bin/busybox is not a static binary (busybox-static is needed)"
}

# ------------------------------------------------------------------------------------------ kernel
kernel_regex() {
    case $KERNEL_SERIES in
    6.1) echo '^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) echo '^linux-image-6\.12\.[0-9]+(\+bpo|\+deb1[0-9])?-amd64$' ;;
    esac
}

# newest_kernel_pkg: prints "PACKAGE VERSION" of the newest package of the series with a candidate
newest_kernel_pkg() {
    local pkg ver
    if [ -n "${VM_KERNEL_PACKAGE:-}" ]; then
        pkg=$VM_KERNEL_PACKAGE
    else
        pkg=$(apt-cache search --names-only "$(kernel_regex)" 2>/dev/null | awk '{ print $1 }' |
            sort -V | tail -n 1)
    fi
    [ -n "$pkg" ] || return 1
    ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || return 1
    echo "$pkg $ver"
}

# newest_cached_kernel: a ready kernel of the series in the cache (offline fallback)
newest_cached_kernel() {
    local d re
    re="$(kernel_regex | sed 's/\$$//')_"
    for d in "$CACHE"/kernels/linux-image-*; do
        if [ -f "$d/.complete" ] && [[ ${d##*/} =~ $re ]]; then echo "${d##*/}"; fi
    done | sort -V | tail -n 1 | grep .
}

# fetch_kernel PKG VER: download + unpack into $CACHE/kernels/PKG_VER
fetch_kernel() {
    local pkg=$1 ver=$2 dir tmp deb
    dir=$CACHE/kernels/${pkg}_$ver
    if [ -f "$dir/.complete" ]; then return 0; fi
    tmp=$(mktemp -d "$CACHE/kernels/.fetch.XXXXXX")
    chmod 755 "$tmp"
    say "downloading $pkg $ver"
    # (APT::Sandbox::User=root: the _apt user may not write to $tmp)
    if ! (cd "$tmp" && apt_quiet -o APT::Sandbox::User=root download "$pkg=$ver"); then
        rm -f "$APT_LOG"
        apt_update
        (cd "$tmp" && apt_quiet -o APT::Sandbox::User=root download "$pkg=$ver") ||
            { rm -rf "$tmp"; apt_fail "apt-get download $pkg=$ver failed"; }
    fi
    deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n 1)
    [ -n "$deb" ] || { rm -rf "$tmp"; die "apt-get download $pkg produced no .deb"; }
    say "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; die "dpkg-deb -x $deb failed"; }
    rm -f "$deb"
    find "$tmp/root/boot" -maxdepth 1 -name 'vmlinuz-*' | grep -q . ||
        { rm -rf "$tmp"; die "$pkg has no /boot/vmlinuz-*"; }
    rm -rf "$dir"
    touch "$tmp/.complete"
    mv "$tmp" "$dir"
}

# The apt lists' state: the newest kernel package can only change when it changes.
lists_stamp() {
    local d
    find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -printf '%p %s %T@\n' 2>/dev/null |
        sort | cksum | cut -d' ' -f1
}

resolve_kernel() { # sets KDIR
    local pv pkg ver cached memo stamp s
    mkdir -p "$CACHE/kernels"
    # apt-cache takes about a second here (no pkgcache.bin): remember its answer per apt-lists state.
    memo=$CACHE/kernels/.resolved-$KERNEL_SERIES-${VM_KERNEL_PACKAGE:-newest}
    stamp=$(lists_stamp)
    if [ -f "$memo" ] && read -r s pkg ver <"$memo" && [ "$s" = "$stamp" ] &&
        [ -f "$CACHE/kernels/${pkg}_$ver/.complete" ]; then
        KDIR=$CACHE/kernels/${pkg}_$ver
        return 0
    fi
    pv=$(newest_kernel_pkg) || pv=
    if [ -z "$pv" ]; then
        cached=$(newest_cached_kernel) || cached=
        if [ -n "$cached" ]; then
            say "note: no $KERNEL_SERIES kernel package in the apt lists; using the cached $cached"
            KDIR=$CACHE/kernels/$cached
            return 0
        fi
        apt_update
        pv=$(newest_kernel_pkg) || pv=
    fi
    if [ -z "$pv" ]; then
        if [ "$KERNEL_SERIES" = 6.12 ]; then
            die "--kernel 6.12: no linux-image-6.12.*-amd64 package in the configured apt sources.
  Debian bookworm has 6.12 in bookworm-security (linux-image-6.12.NN+deb12-amd64) and in
  bookworm-backports (linux-image-6.12.NN+bpo-amd64); add one of these suites to the apt sources
  (e.g. echo 'deb http://deb.debian.org/debian bookworm-backports main' >
  /etc/apt/sources.list.d/backports.list) and run apt-get update."
        fi
        die "no ${VM_KERNEL_PACKAGE:-linux-image-6.1.0-NN-amd64} package found by apt-cache"
    fi
    read -r pkg ver <<<"$pv"
    fetch_kernel "$pkg" "$ver"
    KDIR=$CACHE/kernels/${pkg}_$ver
    echo "$(lists_stamp) $pkg $ver" >"$memo"
}

# --------------------------------------------------------------------------------------- initramfs
norm() { local n=${1##*/}; n=${n%%.ko*}; echo "${n//-/_}"; }

decompress_module() { # SRC DST
    case $1 in
    *.ko) cp "$1" "$2" ;;
    *.ko.xz) xz -dc "$1" >"$2" ;;
    *.ko.zst) zstd -qdc "$1" >"$2" ;;
    *.ko.gz) gzip -dc "$1" >"$2" ;;
    *) return 1 ;;
    esac
}

# is_whole_elf FILE: FILE is a 64-bit ELF whose section header table fits in it (not truncated)
is_whole_elf() {
    local size shoff shentsize shnum
    [ "$(head -c 5 "$1" | od -An -c | tr -d ' ')" = '177ELF002' ] || return 1
    size=$(stat -c %s "$1")
    shoff=$(od -An -t u8 -j 40 -N 8 "$1" | tr -d ' ')
    shentsize=$(od -An -t u2 -j 58 -N 2 "$1" | tr -d ' ')
    shnum=$(od -An -t u2 -j 60 -N 2 "$1" | tr -d ' ')
    [ $((shoff + shentsize * shnum)) -le "$size" ]
}

# Decompressing the bzImage's payload under TCG takes seconds at every boot; with CONFIG_PVH qemu
# boots the uncompressed ELF vmlinux directly. Extract it once (sets BOOT_KERNEL).
prepare_boot_kernel() {
    local out=$KDIR/vmlinux-$KREL config=$KDIR/root/boot/config-$KREL tool magic pkg off
    BOOT_KERNEL=$VMLINUZ
    if [ "${VM_PVH:-1}" = 0 ] || ! grep -qx 'CONFIG_PVH=y' "$config" 2>/dev/null; then return 0; fi
    if [ -f "$out" ]; then BOOT_KERNEL=$out; return 0; fi
    if grep -qx 'CONFIG_KERNEL_XZ=y' "$config"; then tool=xz magic='\xfd7zXZ\x00' pkg=xz-utils
    elif grep -qx 'CONFIG_KERNEL_ZSTD=y' "$config"; then tool=zstd magic='\x28\xb5\x2f\xfd' pkg=zstd
    elif grep -qx 'CONFIG_KERNEL_GZIP=y' "$config"; then tool=gzip magic='\x1f\x8b\x08' pkg=gzip
    else
        say "note: $KREL's bzImage compression is not xz, zstd or gzip; booting the bzImage (slower)"
        return 0
    fi
    command -v "$tool" >/dev/null 2>&1 || install_pkgs "$pkg"
    off=$(LC_ALL=C grep -m 1 -obUaP "$magic" "$VMLINUZ" | cut -d: -f1) || off=
    if [ -n "$off" ]; then
        # The payload is followed by other data: decompress the first stream, ignore the rest.
        case $tool in
        xz) tail -c +$((off + 1)) "$VMLINUZ" | xz -dcq --single-stream >"$out.tmp" 2>/dev/null || true ;;
        zstd) tail -c +$((off + 1)) "$VMLINUZ" | zstd -dcq >"$out.tmp" 2>/dev/null || true ;;
        gzip) tail -c +$((off + 1)) "$VMLINUZ" | gzip -dcq >"$out.tmp" 2>/dev/null || true ;;
        esac
        if is_whole_elf "$out.tmp"; then
            mv "$out.tmp" "$out"
            BOOT_KERNEL=$out
            return 0
        fi
    fi
    rm -f "$out.tmp"
    say "note: could not extract the ELF vmlinux from $VMLINUZ; booting the bzImage (slower)"
}

build_initrd() { # sets INITRD
    local moddir vmlinuz key stage f name
    vmlinuz=$(find "$KDIR/root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
    KREL=${vmlinuz##*/vmlinuz-}
    VMLINUZ=$vmlinuz
    moddir=
    for f in "$KDIR/root/lib/modules/$KREL" "$KDIR/root/usr/lib/modules/$KREL"; do
        [ -d "$f" ] && moddir=$f && break
    done
    [ -n "$moddir" ] || die "no modules directory for $KREL in $KDIR"
    MODDIR=$moddir
    key=$( {
        echo "layout=$INITRD_LAYOUT modules=${MODULES[*]}"
        cksum <"$INIT_SH"
        cksum </bin/busybox
    } | cksum | cut -d' ' -f1)
    INITRD=$KDIR/initrd-$key.cpio.gz
    if [ -f "$INITRD" ]; then touch "$INITRD"; return 0; fi

    say "building the initramfs for $KREL"
    local -A path=() seen=() builtin=()
    local order=()
    while IFS= read -r f; do
        name=${f##*/}; name=${name%%.ko*}; path[${name//-/_}]=$f # (norm without a subshell each)
    done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
    if [ -f "$moddir/modules.builtin" ]; then
        while IFS= read -r f; do
            name=${f##*/}; name=${name%%.ko*}; builtin[${name//-/_}]=1
        done <"$moddir/modules.builtin"
    fi
    stage=$(mktemp -d "$KDIR/.initrd.XXXXXX")
    mkdir -p "$stage"/{bin,dev,proc,sys,modules}

    add_module() {
        local n=$1 src deps d
        [ -z "${seen[$n]:-}" ] || return 0
        seen[$n]=1
        src=${path[$n]:-}
        if [ -z "$src" ]; then
            [ -n "${builtin[$n]:-}" ] || say "note: $KREL has no module $n (merged into another or not configured); skipped"
            return 0
        fi
        case $src in
        *.xz) command -v xz >/dev/null 2>&1 || install_pkgs xz-utils ;;
        *.zst) command -v zstd >/dev/null 2>&1 || install_pkgs zstd ;;
        esac
        decompress_module "$src" "$stage/modules/$n.ko" || die "cannot decompress $src"
        deps=$(tr '\0' '\n' <"$stage/modules/$n.ko" | sed -n 's/^depends=//p' | head -n 1)
        for d in ${deps//,/ }; do add_module "$(norm "$d")"; done
        order+=("$n")
    }
    for name in "${MODULES[@]}"; do add_module "$(norm "$name")"; done
    printf '%s\n' "${order[@]}" >"$stage/modules/order"

    cp /bin/busybox "$stage/bin/busybox"
    while read -r name; do
        [ "$name" = busybox ] || ln -s busybox "$stage/bin/$name"
    done < <(/bin/busybox --list)
    cp "$INIT_SH" "$stage/init"
    chmod 755 "$stage/init" "$stage/bin/busybox"
    mknod "$stage/dev/console" c 5 1
    mknod "$stage/dev/null" c 1 3
    (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
        gzip -1 >"$stage.cpio.gz" || { rm -rf "$stage" "$stage.cpio.gz"; die "cpio failed"; }
    rm -rf "$stage"
    # Images of other init.sh versions (another checkout may still use one): pruned after a week.
    find "$KDIR" -maxdepth 1 -name 'initrd-*.cpio.gz' -mtime +7 -delete
    mv "$stage.cpio.gz" "$INITRD"
    say "initramfs: modules ${order[*]}"
}

# -------------------------------------------------------------------------------------------- main
ensure_host_tools
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
resolve_kernel
build_initrd
prepare_boot_kernel
# Kernels not used for 30 days (each unpacked one takes ~400 MB).
touch "$KDIR/.complete"
find "$CACHE/kernels" -mindepth 2 -maxdepth 2 -name .complete -mtime +30 -printf '%h\n' |
    while IFS= read -r old; do say "pruning the unused $old"; rm -rf "$old"; done
flock -u 9
exec 9>&-
PREP_TIME=$(elapsed "$T0")

if [ "$PREPARE" = 1 ]; then
    say "ready: $BOOT_KERNEL + $INITRD (${PREP_TIME} s)"
    exit 0
fi

WORK=
QPID=
SPID=
# shellcheck disable=SC2317 # (run by the EXIT trap)
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
    fi
    if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/swiftlet-vm.XXXXXX")
mkdir -p "$WORK/ctl" "$WORK/out"
if [ -z "$OUT_DIR" ]; then OUT_DIR=$WORK/out; fi
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd -P)
CWD=$(pwd -P)

shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
valid_name() { [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; }

{
    echo "# generated by vm-test.sh"
    echo "export PATH=$(shq "$GUEST_PATH") HOME=/root VM_OUT=/vm-out VM_TEST=1"
    while IFS= read -r name; do
        echo "export $name=$(shq "${!name}")"
    done < <(compgen -e | grep -E '^SWIFTLET_' || true)
    while IFS= read -r name; do
        valid_name "${name#VM_ENV_}" || die "VM_ENV_ variable $name: bad name"
        echo "export ${name#VM_ENV_}=$(shq "${!name}")"
    done < <(compgen -e | grep -E '^VM_ENV_.' || true)
    for kv in "${EXTRA_ENV[@]}"; do
        name=${kv%%=*}
        valid_name "$name" || die "-e $kv: bad variable name"
        if [[ $kv == *=* ]]; then value=${kv#*=}; else
            [ -n "${!name+x}" ] || die "-e $name: not set on the host"
            value=${!name}
        fi
        echo "export $name=$(shq "$value")"
    done
    echo "cd $(shq "$CWD") || exit 125"
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(shq "$a")"; done
    echo
} >"$WORK/ctl/run.sh"

# Host paths under /tmp and /run that must stay visible although the guest mounts tmpfs there. A path
# inside another kept directory is visible through it already (and must not be mounted twice).
CARRY=()
for p in "$CWD" "${SWIFTLET_BINARY:-}" "${SWIFTLET_ROOTFS:-}" "${KEEP[@]}"; do
    if [ -z "$p" ] || [ ! -e "$p" ]; then continue; fi
    p=$(realpath -e "$p")
    case $p in
    *$'\n'*) say "warning: not keeping a path with a newline in its name" ;;
    /tmp/* | /run/*) CARRY+=("$p") ;;
    /tmp | /run) say "warning: cannot keep all of $p in the guest (it gets a fresh tmpfs there)" ;;
    esac
done
KEPT=()
if [ ${#CARRY[@]} -gt 0 ]; then
    while IFS= read -r p; do
        for k in "${KEPT[@]}"; do
            if [ "$p" = "$k" ] || [[ $p == "$k"/* ]]; then continue 2; fi
        done
        KEPT+=("$p")
    done < <(printf '%s\n' "${CARRY[@]}" | LC_ALL=C sort)
fi
printf '%s\n' "${KEPT[@]}" >"$WORK/ctl/carry"
echo "$MODDIR" >"$WORK/ctl/modules-dir"
if [ "$SYSTEMD" = 1 ]; then : >"$WORK/ctl/systemd"; fi
if [ "$HYBRID" = 1 ]; then : >"$WORK/ctl/hybrid"; fi

esc() { echo "${1//,/,,}"; } # qemu option values: a comma is written ,,
# Kernel arguments: quiet console on the serial port; panic => reboot => qemu exits (-no-reboot);
# the rest only saves boot time under TCG (no crypto self-tests, no TSC/timer sanity checks).
KARGS="console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off cryptomgr.notests tsc=reliable no_timer_check"
if [ "$HYBRID" = 1 ]; then KARGS+=" systemd.unified_cgroup_hierarchy=0"; fi
KARGS+=${VM_KERNEL_ARGS:+ $VM_KERNEL_ARGS}
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -machine pc -accel "tcg,thread=multi" -cpu "${VM_QEMU_CPU:-max}"
    -smp "$CPUS" -m "$MEM" -display none -serial stdio -monitor none -no-reboot
    -kernel "$BOOT_KERNEL" -initrd "$INITRD" -append "$KARGS"
    -virtfs "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap"
    -virtfs "local,path=$(esc "$WORK/ctl"),mount_tag=vmctl,security_model=passthrough"
    -virtfs "local,path=$(esc "$OUT_DIR"),mount_tag=vmout,security_model=passthrough,multidevs=remap")

# qboot (qemu-system-data) starts about a second sooner than SeaBIOS under TCG.
if [ -f /usr/share/qemu/qboot.rom ] && [ "${VM_QBOOT:-1}" != 0 ]; then QEMU+=(-bios qboot.rom); fi

[[ $TIMEOUT =~ [smhd]$ ]] && TIMEOUT_TEXT=$TIMEOUT || TIMEOUT_TEXT="$TIMEOUT s"
say "booting $KREL (TCG, $CPUS vCPUs, $MEM MiB, timeout $TIMEOUT_TEXT): $*"
T1=$(date +%s.%N)
"${QEMU[@]}" </dev/null &
QPID=$!
sleep "$TIMEOUT" &
SPID=$!
DONE=
QRC=0
wait -n -p DONE "$QPID" "$SPID" || QRC=$?
if [ "$DONE" = "$SPID" ]; then
    SPID=
    say "TIMEOUT: '$*' did not finish within $TIMEOUT_TEXT (VM_TIMEOUT); killing qemu (pid $QPID)"
    kill "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
    QPID=
    exit 124
fi
QPID=
kill "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true
SPID=
VM_TIME=$(elapsed "$T1")

if [ -f "$WORK/ctl/error" ]; then
    die "the VM could not be set up: $(cat "$WORK/ctl/error") (qemu exit $QRC, ${VM_TIME} s)"
fi
if [ ! -f "$WORK/ctl/status" ]; then
    die "the VM ended without reporting an exit status (qemu exit $QRC after ${VM_TIME} s; console above)"
fi
RC=$(cat "$WORK/ctl/status")
[[ $RC =~ ^[0-9]+$ ]] || die "bad exit status '$RC' from the VM"
# ctl/times: "boot=S command=S" (guest uptime when COMMAND started; COMMAND's run time)
BOOT_S='?' CMD_S='?'
if [ -f "$WORK/ctl/times" ]; then
    read -r b c <"$WORK/ctl/times" || true
    BOOT_S=${b#boot=} CMD_S=${c#command=}
fi
say "exit $RC (kernel $KREL; prepare ${PREP_TIME} s, guest boot ${BOOT_S} s, command ${CMD_S} s, qemu ${VM_TIME} s, total $(elapsed "$T0") s)"
exit "$RC"
