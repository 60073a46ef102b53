// A config.json as containerd's CRI plugin writes it for runc (abridged seccomp profile), with the
// fields Swiftlet does not model (windows, vm, solaris, process.apparmorProfile …) left in.
let containerdConfig = #"""
    {
      "ociVersion": "1.1.0",
      "process": {
        "user": {
          "uid": 65534,
          "gid": 65534,
          "additionalGids": [65534, 10, 4294967295],
          "umask": 18
        },
        "args": ["/pause"],
        "env": [
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "KUBERNETES_SERVICE_HOST=10.96.0.1"
        ],
        "cwd": "/",
        "capabilities": {
          "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
          "effective": ["CAP_CHOWN", "CAP_KILL"],
          "permitted": ["CAP_CHOWN", "CAP_KILL"]
        },
        "rlimits": [
          {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1024},
          {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 18446744073709551615}
        ],
        "noNewPrivileges": true,
        "apparmorProfile": "cri-containerd.apparmor.d",
        "oomScoreAdj": -998,
        "selinuxLabel": "",
        "futureProcessField": {"nested": [1, 2, {"x": null}]}
      },
      "root": {
        "path": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
        "readonly": true
      },
      "hostname": "pod-\u00e9t\u00e9",
      "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/dev/shm", "type": "bind",
         "source": "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm", "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]},
        {"destination": "/etc/resolv.conf", "type": "bind",
         "source": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/resolv.conf", "options": ["rbind", "ro"]}
      ],
      "hooks": {
        "createRuntime": [
          {"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["nvidia-container-runtime-hook", "prestart"],
           "env": ["A=b"], "timeout": 30}
        ],
        "poststop": [{"path": "/bin/true"}]
      },
      "annotations": {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": "abc",
        "io.kubernetes.cri.sandbox-name": "coredns-5d78c9869d-abcde",
        "io.kubernetes.cri.sandbox-namespace": "kube-system"
      },
      "linux": {
        "uidMappings": null,
        "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
        "resources": {
          "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}],
          "memory": {"limit": 178257920, "swap": -1, "swappiness": 0},
          "cpu": {"shares": 2, "quota": -1, "period": 100000, "cpus": "0-3"},
          "pids": {"limit": 4096},
          "blockIO": {"weight": 10, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
          "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
          "unified": {"memory.high": "max", "io.weight": "default 100"}
        },
        "cgroupsPath": "kubepods-burstable-podabc.slice:cri-containerd:abc",
        "namespaces": [
          {"type": "pid"},
          {"type": "ipc"},
          {"type": "uts"},
          {"type": "mount"},
          {"type": "network", "path": "/var/run/netns/cni-1234"}
        ],
        "seccomp": {
          "defaultAction": "SCMP_ACT_ERRNO",
          "defaultErrnoRet": 1,
          "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "syscalls": [
            {"names": ["accept", "accept4", "access"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 4294967295, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}], "comment": "ignored", "includes": {}}
          ]
        },
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        "mountLabel": "",
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
        "intelRdt": {"closID": "guaranteed_group"}
      },
      "windows": {"layerFolders": null},
      "vm": {"hypervisor": {"path": "/x"}}
    }
    """#
