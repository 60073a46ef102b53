#!/bin/busybox sh
# Scripts/vm/init.sh - /init of the initramfs that Scripts/vm-test.sh builds (busybox-static ash).
#
# Stage 1 (PID 1 in the initramfs):
#   insmod the modules listed in /modules/order (dependency order, written by vm-test.sh);
#   mount the host's / (9p tag "host", read-only) at /lower, a tmpfs at /rw and
#   overlay(lower=/lower, upper=/rw/upper) at /newroot; fresh tmpfs on /newroot/run and /newroot/tmp
#   (host paths under /tmp or /run listed in ctl/carry are bind-mounted back from the overlay first);
#   proc, sysfs, devtmpfs (+devpts, /dev/shm, mqueue), cgroup2 with every controller enabled in
#   the root's cgroup.subtree_control; 9p tag "vmctl" (control files) at /run/vm/ctl and 9p tag
#   "vmout" at /vm-out (both writable host directories); then switch_root (not chroot: a chrooted
#   process may not create user namespaces) into /newroot and run stage 2 as PID 1.
# Stage 2 (PID 1 on the overlay root, `init.sh stage2`): run /run/vm/ctl/run.sh (written by
#   vm-test.sh: environment, cd, exec COMMAND) with a clean environment and stdin from /dev/null,
#   write its exit status to ctl/status and timings to ctl/times, power off.
# Stage 2 with systemd (ctl/systemd exists, vm-test.sh --systemd): stage 2 execs /lib/systemd/systemd
#   as PID 1 with vm-test.service as its goal (DefaultDependencies=no, after dbus.socket and
#   dbus.service, themselves made free of default dependencies); that unit runs `init.sh
#   systemd-command`: run.sh as above (output to /dev/console), the status and times, power off.
# Any setup failure writes ctl/error and powers off; vm-test.sh reports it.
# shellcheck shell=sh

export PATH=/bin
CTL=/run/vm/ctl

say() { echo "vm-init: $*" >&2; }
DEBUG=0
step() {
    [ "$DEBUG" = 0 ] && return 0
    for u in /proc/uptime /newroot/proc/uptime; do [ -r "$u" ] && break; done
    echo "vm-init: $(cut -d' ' -f1 "$u") s: $*" >&2
}

poweroff_now() {
    sync
    for f in /proc/sys/kernel/printk /newroot/proc/sys/kernel/printk; do
        if [ -w "$f" ]; then echo 0 >"$f"; fi # no "reboot: Power down" on the console
    done
    /bin/busybox poweroff -f
    # Not reached; if poweroff failed, panic (exit of PID 1) + panic=-1 + qemu -no-reboot ends it.
    exit 1
}

CTL_NOW= # where the vmctl share is mounted at the moment, once it is
fail() {
    say "error: $*"
    if [ -n "$CTL_NOW" ]; then echo "$*" >"$CTL_NOW/error"; fi
    poweroff_now
}

mount_cgroup2() { # DIR: cgroup2 with every controller enabled in the root's subtree_control
    mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 "$1" ||
        mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$1" || fail "mount cgroup2"
    read -r controllers <"$1/cgroup.controllers"
    for c in $controllers; do
        echo "+$c" >"$1/cgroup.subtree_control" || say "warning: cannot enable cgroup controller $c"
    done
}

stage1() {
    mount -t proc -o nosuid,nodev,noexec proc /proc || fail "mount /proc"
    mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail "mount /sys"
    mount -t devtmpfs -o nosuid,mode=755 devtmpfs /dev || fail "mount /dev"
    # The serial console adds \r to every \n (onlcr); the host's terminal, if any, does that already.
    stty -onlcr </dev/console 2>/dev/null || true
    case " $(cat /proc/cmdline) " in *" vmtest.debug "*) DEBUG=1 ;; esac
    step "stage 1"

    while read -r m; do
        [ -n "$m" ] || continue
        insmod "/modules/$m.ko" || fail "insmod $m"
    done </modules/order
    step "modules loaded"

    opts9p=trans=virtio,version=9p2000.L,msize=512000
    mkdir -p /lower /rw /newroot
    mount -t 9p -o "ro,$opts9p,cache=loose" host /lower || fail "mount the host's / (9p tag host)"
    mount -t tmpfs -o mode=755 tmpfs /rw || fail "mount tmpfs /rw"
    mkdir -p /rw/upper /rw/work
    mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
        fail "mount overlay on /newroot"
    step "overlay root mounted"

    # Host paths under /tmp or /run to keep visible (the overlay's copy-on-write view of them).
    n=0
    mkdir -p /hold
    mkdir -p /ctl0
    mount -t 9p -o "$opts9p,cache=none" vmctl /ctl0 || fail "mount 9p tag vmctl"
    CTL_NOW=/ctl0
    if [ -f /ctl0/carry ]; then
        while IFS= read -r p; do
            [ -n "$p" ] || continue
            if [ -e "/newroot$p" ]; then
                n=$((n + 1))
                if [ -d "/newroot$p" ]; then mkdir -p "/hold/$n"; else : >"/hold/$n"; fi
                mount --bind "/newroot$p" "/hold/$n" || fail "bind $p"
                echo "$n $p" >>/hold/list
            fi
        done </ctl0/carry
    fi

    for d in run tmp; do
        mkdir -p "/newroot/$d" || fail "mkdir /$d"
    done
    mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /newroot/run || fail "mount tmpfs /run"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /newroot/tmp || fail "mount tmpfs /tmp"
    if [ -f /hold/list ]; then
        while read -r n p; do
            if [ -d "/hold/$n" ]; then mkdir -p "/newroot$p"; else
                mkdir -p "/newroot${p%/*}" && { [ -e "/newroot$p" ] || : >"/newroot$p"; }
            fi
            mount --move "/hold/$n" "/newroot$p" || fail "move $p"
        done </hold/list
    fi

    mkdir -p "/newroot$CTL" /newroot/vm-out
    mount --move /ctl0 "/newroot$CTL" || fail "move vmctl"
    CTL_NOW=/newroot$CTL
    mount -t 9p -o "$opts9p,cache=none" vmout /newroot/vm-out || fail "mount 9p tag vmout at /vm-out"

    mount --move /proc /newroot/proc || fail "move /proc"
    mount --move /sys /newroot/sys || fail "move /sys"
    mount --move /dev /newroot/dev || fail "move /dev"
    mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/dev/mqueue
    # What udev would add: bash's process substitution needs /dev/fd.
    ln -sf /proc/self/fd /newroot/dev/fd
    ln -sf /proc/self/fd/0 /newroot/dev/stdin
    ln -sf /proc/self/fd/1 /newroot/dev/stdout
    ln -sf /proc/self/fd/2 /newroot/dev/stderr
    ln -sf /proc/kcore /newroot/dev/core
    mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts || fail "mount devpts"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /newroot/dev/shm || fail "mount /dev/shm"
    mount -t mqueue -o nosuid,nodev,noexec mqueue /newroot/dev/mqueue || true
    # cgroup v2 the way systemd mounts it (vm-test.sh --hybrid: systemd mounts its hybrid layout).
    cg=/newroot/sys/fs/cgroup
    [ -f "/newroot$CTL/hybrid" ] || mount_cgroup2 "$cg"

    # The kernel's own modules (for busybox modprobe/insmod), if vm-test.sh says where they are.
    if [ -f "/newroot$CTL/modules-dir" ]; then
        src=$(cat "/newroot$CTL/modules-dir")
        dst=/newroot/lib/modules/$(uname -r)
        if [ -d "/newroot$src" ] && mkdir -p "$dst"; then
            mount --bind "/newroot$src" "$dst" || say "warning: cannot bind $src at /lib/modules"
        fi
    fi

    hostname swiftlet-vm
    ip link set lo up 2>/dev/null || true
    mkdir -p /newroot/run/vm
    cp /bin/busybox /newroot/run/vm/busybox || fail "copy busybox to /run/vm"
    cp /init /newroot/run/vm/init || fail "copy init to /run/vm"
    step "switch_root"
    # shellcheck disable=SC2093 # (exec fails only when switch_root cannot run)
    exec switch_root /newroot /run/vm/busybox sh /run/vm/init stage2
    fail "switch_root"
}

stage2() {
    bb=/run/vm/busybox
    if [ -f "$CTL/systemd" ]; then boot_systemd; fi
    start=$($bb cut -d' ' -f1 /proc/uptime)
    case " $($bb cat /proc/cmdline) " in *" vmtest.debug "*) echo "vm-init: $start s: stage 2" >&2 ;; esac
    if [ -f "$CTL/run.sh" ]; then
        $bb env -i /run/vm/busybox sh "$CTL/run.sh" </dev/null
        rc=$?
    else
        say "error: $CTL/run.sh is missing"
        rc=125
    fi
    end=$($bb cut -d' ' -f1 /proc/uptime)
    echo "boot=$start command=$($bb awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')" >"$CTL/times"
    echo "$rc" >"$CTL/status.tmp" && $bb mv "$CTL/status.tmp" "$CTL/status"
    $bb sync
    echo 0 >/proc/sys/kernel/printk # no "reboot: Power down" on the console
    $bb umount /vm-out 2>/dev/null
    $bb umount "$CTL" 2>/dev/null
    $bb poweroff -f
    exit "$rc"
}

# PID 1 becomes systemd: only vm-test.service and what it needs are started (no sysinit.target:
# udev, journald's flush, getty... cost many seconds under TCG and are not needed).
boot_systemd() {
    u=/etc/systemd/system
    $bb mkdir -p "$u/dbus.service.d" "$u/dbus.socket.d" || fail "mkdir $u"
    for d in dbus.service.d dbus.socket.d; do
        printf '[Unit]\nDefaultDependencies=no\n' >"$u/$d/vm-test.conf" || fail "write $u/$d"
    done
    cat >"$u/vm-test.service" <<'UNIT' || fail "write $u/vm-test.service"
[Unit]
Description=vm-test.sh command
DefaultDependencies=no
Wants=dbus.socket dbus.service
After=dbus.socket dbus.service

[Service]
Type=oneshot
ExecStart=/run/vm/busybox sh /run/vm/init systemd-command
UNIT
    # loginctl enable-linger (RootlessSystemdTests, the rootless podman clients) starts logind,
    # which pulls in sysinit.target: its tmpfiles run (`D /tmp`) would empty /tmp under the
    # running tests. Masked.
    $bb ln -sf /dev/null "$u/systemd-tmpfiles-setup.service" || fail "mask systemd-tmpfiles-setup.service"
    [ -x /lib/systemd/systemd ] || fail "/lib/systemd/systemd is missing (apt-get install systemd)"
    # systemd takes itself for a container here (the host's /.dockerenv is in the 9p root) and reads
    # its "kernel command line" from its own argv then: the hybrid switch goes there too.
    hybrid=
    if [ -f "$CTL/hybrid" ]; then hybrid=systemd.unified_cgroup_hierarchy=0; fi
    exec /lib/systemd/systemd --unit=vm-test.service --show-status=false --log-level=warning --log-target=kmsg $hybrid
    fail "exec /lib/systemd/systemd"
}

# vm-test.service's command (systemd is PID 1): as stage 2 without the PID 1 duties.
systemd_command() {
    bb=/run/vm/busybox
    start=$($bb cut -d' ' -f1 /proc/uptime)
    $bb env -i /run/vm/busybox sh "$CTL/run.sh" </dev/null >/dev/console 2>&1
    rc=$?
    end=$($bb cut -d' ' -f1 /proc/uptime)
    echo "boot=$start command=$($bb awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')" >"$CTL/times"
    echo "$rc" >"$CTL/status.tmp" && $bb mv "$CTL/status.tmp" "$CTL/status"
    $bb sync
    echo 0 >/proc/sys/kernel/printk
    $bb poweroff -f
    exit "$rc"
}

case ${1:-} in
stage2) stage2 ;;
systemd-command) systemd_command ;;
*) stage1 ;;
esac
