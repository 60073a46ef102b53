// One-line wrappers and constants for what Swift's Glibc module does not expose. No logic here.
#ifndef SWIFTLET_CLINUX_H
#define SWIFTLET_CLINUX_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <stdint.h>
#include <termios.h>

// Namespace and clone flags.
static const int SL_CLONE_NEWNS = 0x00020000;
static const int SL_CLONE_NEWCGROUP = 0x02000000;
static const int SL_CLONE_NEWUTS = 0x04000000;
static const int SL_CLONE_NEWIPC = 0x08000000;
static const int SL_CLONE_NEWUSER = 0x10000000;
static const int SL_CLONE_NEWPID = 0x20000000;
static const int SL_CLONE_NEWNET = 0x40000000;
static const int SL_CLONE_NEWTIME = 0x00000080;

// Mount flags (sys/mount.h clashes with linux/mount.h, so the values are spelled here).
static const unsigned long SL_MS_RDONLY = 1;
static const unsigned long SL_MS_NOSUID = 2;
static const unsigned long SL_MS_NODEV = 4;
static const unsigned long SL_MS_NOEXEC = 8;
static const unsigned long SL_MS_SYNCHRONOUS = 16;
static const unsigned long SL_MS_REMOUNT = 32;
static const unsigned long SL_MS_MANDLOCK = 64;
static const unsigned long SL_MS_DIRSYNC = 128;
static const unsigned long SL_MS_NOSYMFOLLOW = 256;
static const unsigned long SL_MS_NOATIME = 1024;
static const unsigned long SL_MS_NODIRATIME = 2048;
static const unsigned long SL_MS_BIND = 4096;
static const unsigned long SL_MS_MOVE = 8192;
static const unsigned long SL_MS_REC = 16384;
static const unsigned long SL_MS_SILENT = 32768;
static const unsigned long SL_MS_UNBINDABLE = 1UL << 17;
static const unsigned long SL_MS_PRIVATE = 1UL << 18;
static const unsigned long SL_MS_SLAVE = 1UL << 19;
static const unsigned long SL_MS_SHARED = 1UL << 20;
static const unsigned long SL_MS_RELATIME = 1UL << 21;
static const unsigned long SL_MS_I_VERSION = 1UL << 23;
static const unsigned long SL_MS_STRICTATIME = 1UL << 24;
static const unsigned long SL_ST_RELATIME = 0x1000;   // statvfs f_flag (not MS_RELATIME)
static const unsigned long SL_MS_LAZYTIME = 1UL << 25;
static const int SL_MNT_DETACH = 2;

// rlimit resources as plain ints (glibc's enum imports badly).
static const int SL_RLIMIT_CPU = 0, SL_RLIMIT_FSIZE = 1, SL_RLIMIT_DATA = 2, SL_RLIMIT_STACK = 3,
    SL_RLIMIT_CORE = 4, SL_RLIMIT_RSS = 5, SL_RLIMIT_NPROC = 6, SL_RLIMIT_NOFILE = 7,
    SL_RLIMIT_MEMLOCK = 8, SL_RLIMIT_AS = 9, SL_RLIMIT_LOCKS = 10, SL_RLIMIT_SIGPENDING = 11,
    SL_RLIMIT_MSGQUEUE = 12, SL_RLIMIT_NICE = 13, SL_RLIMIT_RTPRIO = 14, SL_RLIMIT_RTTIME = 15;

static const int SL_PR_SET_DUMPABLE = 4, SL_PR_SET_PDEATHSIG = 1, SL_PR_SET_KEEPCAPS = 8, SL_PR_SET_NO_NEW_PRIVS = 38,
    SL_PR_SET_CHILD_SUBREAPER = 36, SL_PR_SET_NAME = 15, SL_PR_CAPBSET_DROP = 24;

int sl_unshare(int flags);
int sl_setns(int fd, int nstype);
int sl_pivot_root(const char *new_root, const char *put_old);
int sl_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
int sl_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data);
int sl_umount2(const char *target, int flags);
int sl_setrlimit(int resource, uint64_t soft, uint64_t hard);
int sl_pipe2(int fds[2], int flags);
int sl_close_range(unsigned int first, unsigned int last, unsigned int flags);
int sl_pidfd_open(pid_t pid, unsigned int flags);
int sl_pidfd_send_signal(int pidfd, int sig, unsigned int flags);
int sl_setgroups(size_t size, const gid_t *list);
int sl_sethostname(const char *name, size_t len);
int sl_setdomainname(const char *name, size_t len);
dev_t sl_makedev(unsigned int major, unsigned int minor);
unsigned int sl_major(dev_t dev);
unsigned int sl_minor(dev_t dev);
long sl_join_session_keyring(const char *name); // keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)
int sl_personality(unsigned long persona);
int sl_sched_setaffinity(int pid, unsigned long size, const void *mask);
int sl_eventfd(void);
int sl_memfd(const char *name);                          // memfd_create(name, MFD_CLOEXEC)
// seccomp(SECCOMP_SET_MODE_FILTER, flags, {count, filter}) with filter = struct sock_filter[count].
int sl_seccomp_set_filter(unsigned int flags, const void *filter, unsigned short count);
// seccomp(SECCOMP_SET_MODE_FILTER, flags, NULL): EFAULT when the kernel takes `flags`, EINVAL when not.
int sl_seccomp_probe_flags(unsigned int flags);
static const unsigned long long SL_CLONE_INTO_CGROUP = 0x200000000ULL;
// clone3 (returns like fork; cgroup_fd is used with SL_CLONE_INTO_CGROUP in flags) and clone without a
// new stack (namespace flags, SIGCHLD). The child must not rely on glibc's cached tid.
pid_t sl_clone3(unsigned long long flags, int cgroup_fd);
pid_t sl_clone(unsigned long flags);
int sl_inotify_modify_watch(const char *path);          // inotify fd (CLOEXEC|NONBLOCK) watching IN_MODIFY
// bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_CGROUP_DEVICE program (insns: 8-byte struct bpf_insn each).
int sl_bpf_load_device_prog(const void *insns, unsigned int count, char *log, unsigned int log_size);
// bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) of prog_fd to the cgroup directory fd.
int sl_bpf_attach_device_prog(int prog_fd, int cgroup_fd);
long sl_statfs_type(const char *path);        // statfs(2) f_type, -1 on error
long sl_fstatfs_type(int fd);                 // fstatfs(2) f_type, -1 on error
int sl_rename_exchange(const char *a, const char *b);   // renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
// mount_setattr(2) with a struct mount_attr built from its fields.
int sl_mount_setattr(int dfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr,
                     uint64_t propagation, uint64_t userns_fd);
static const unsigned int SL_AT_RECURSIVE = 0x8000;
static const unsigned int SL_AT_EMPTY_PATH = 0x1000;
static const unsigned int SL_OPEN_TREE_CLONE = 1;
static const unsigned int SL_OPEN_TREE_CLOEXEC = 02000000;
static const unsigned int SL_MOVE_MOUNT_F_EMPTY_PATH = 4;
int sl_open_tree(int dfd, const char *path, unsigned int flags);
// statx(2) for the mount id only (STATX_MNT_ID; 0 when the kernel does not report it).
int sl_statx_mnt_id(int dfd, const char *path, int flags, uint64_t *mnt_id);
int sl_openat2(int dfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
static const uint64_t SL_RESOLVE_NO_XDEV = 0x01, SL_RESOLVE_NO_MAGICLINKS = 0x02, SL_RESOLVE_NO_SYMLINKS = 0x04,
    SL_RESOLVE_BENEATH = 0x08, SL_RESOLVE_IN_ROOT = 0x10;
static const unsigned int SL_MOVE_MOUNT_T_EMPTY_PATH = 0x40;
int sl_fsopen(const char *fsname, unsigned int flags);
int sl_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux);
int sl_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
static const unsigned int SL_FSOPEN_CLOEXEC = 1, SL_FSMOUNT_CLOEXEC = 1;
static const unsigned int SL_FSCONFIG_SET_FLAG = 0, SL_FSCONFIG_SET_STRING = 1, SL_FSCONFIG_CMD_CREATE = 6;
int sl_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags);
static const uint64_t SL_MOUNT_ATTR_RDONLY = 0x1, SL_MOUNT_ATTR_NOSUID = 0x2, SL_MOUNT_ATTR_NODEV = 0x4,
    SL_MOUNT_ATTR_NOEXEC = 0x8, SL_MOUNT_ATTR__ATIME = 0x70, SL_MOUNT_ATTR_RELATIME = 0x0,
    SL_MOUNT_ATTR_NOATIME = 0x10, SL_MOUNT_ATTR_STRICTATIME = 0x20, SL_MOUNT_ATTR_NODIRATIME = 0x80,
    SL_MOUNT_ATTR_IDMAP = 0x100000, SL_MOUNT_ATTR_NOSYMFOLLOW = 0x200000;
int sl_ioprio_set_self(int ioprio);              // ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio)
// sched_setattr(0, {policy, flags, nice, priority, runtime, deadline, period}, 0) (struct sched_attr, VER0)
int sl_sched_setattr_self(uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority, uint64_t runtime,
                          uint64_t deadline, uint64_t period);
int sl_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int sl_setresuid(uid_t r, uid_t e, uid_t s);
int sl_setresgid(gid_t r, gid_t e, gid_t s);
static const int SL_O_PATH = 010000000;

// wait(2) status decoding.
int sl_wifexited(int status);
int sl_wexitstatus(int status);
int sl_wifsignaled(int status);
int sl_wtermsig(int status);

// SCM_RIGHTS: send/receive one fd with a short payload.
ssize_t sl_send_fd(int sock, int fd, const void *buf, size_t len);
ssize_t sl_recv_fd(int sock, int *fd, void *buf, size_t len);

// Terminals.
int sl_openpt(void);            // posix_openpt(O_RDWR|O_NOCTTY|O_CLOEXEC)
int sl_unlockpt(int fd);
int sl_ptsname(int fd, char *buf, size_t len);
int sl_set_ctty(int fd);        // ioctl(fd, TIOCSCTTY, 0)
int sl_get_winsize(int fd, unsigned short *rows, unsigned short *cols);
int sl_set_winsize(int fd, unsigned short rows, unsigned short cols);

// Signals.
int sl_sigmask_block_all(void);
int sl_sigmask_unblock_all(void);
int sl_signal_default_all(void);
int sl_signalfd_all(void);            // signalfd for every signal (they must be blocked), CLOEXEC|NONBLOCK
int sl_signalfd_read(int fd);         // next signal number from a signalfd, 0 if none, -1 on error
int sl_tty_raw(int fd, struct termios *saved);
int sl_tty_restore(int fd, const struct termios *saved);

// epoll (the monitor's event loop). Events carry the fd itself as their data.
static const uint32_t SL_EPOLLIN = 0x001, SL_EPOLLOUT = 0x004, SL_EPOLLERR = 0x008, SL_EPOLLHUP = 0x010,
    SL_EPOLLRDHUP = 0x2000;
int sl_epoll_create(void);                                   // epoll_create1(EPOLL_CLOEXEC)
int sl_epoll_add(int ep, int fd, uint32_t events);           // EPOLL_CTL_ADD with data.fd = fd
int sl_epoll_mod(int ep, int fd, uint32_t events);           // EPOLL_CTL_MOD with data.fd = fd
int sl_epoll_del(int ep, int fd);                            // EPOLL_CTL_DEL
int sl_epoll_wait1(int ep, int *fd, uint32_t *events, int timeout_ms); // one event: 1, 0 on timeout, -1
int sl_accept(int fd);                                       // accept4(fd, 0, 0, SOCK_CLOEXEC|SOCK_NONBLOCK)
int sl_socket_error(int fd);                                 // getsockopt(SO_ERROR), -1 on failure
int sl_peer_uid(int fd, uint32_t *uid);                      // getsockopt(SO_PEERCRED).uid
int sl_set_nonblock(int fd);                                 // fcntl F_SETFL |= O_NONBLOCK
int sl_set_cloexec(int fd);                                  // fcntl F_SETFD FD_CLOEXEC
int sl_connect_inet(int fd, int family, const void *addr, uint16_t port); // sockaddr_in/in6 from raw address
int sl_malloc_trim(void);                                    // malloc_trim(0): free heap pages back to the kernel
unsigned long sl_auxv_phdr(void);                            // getauxval(AT_PHDR): the executable's program headers
unsigned long sl_auxv_phnum(void);                           // getauxval(AT_PHNUM)
#endif
