#define _GNU_SOURCE
#include "clinux.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/vfs.h>
#include <linux/bpf.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <linux/sched.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <grp.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <malloc.h>
#include <sys/auxv.h>
#include <netinet/in.h>

int sl_unshare(int flags) { return unshare(flags); }
int sl_setns(int fd, int nstype) { return setns(fd, nstype); }
int sl_pivot_root(const char *n, const char *o) { return (int)syscall(SYS_pivot_root, n, o); }
int sl_prctl(int o, unsigned long a, unsigned long b, unsigned long c, unsigned long d) { return prctl(o, a, b, c, d); }
int sl_mount(const char *s, const char *t, const char *f, unsigned long fl, const char *d) { return mount(s, t, f, fl, d); }
int sl_umount2(const char *t, int f) { return umount2(t, f); }
int sl_setrlimit(int r, uint64_t s, uint64_t h) { struct rlimit l = {s, h}; return setrlimit(r, &l); }
int sl_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int sl_close_range(unsigned int f, unsigned int l, unsigned int fl) { return (int)syscall(SYS_close_range, f, l, fl); }
int sl_pidfd_open(pid_t p, unsigned int f) { return (int)syscall(SYS_pidfd_open, p, f); }
int sl_pidfd_send_signal(int fd, int s, unsigned int f) { return (int)syscall(SYS_pidfd_send_signal, fd, s, NULL, f); }
int sl_setgroups(size_t n, const gid_t *l) { return setgroups(n, l); }
int sl_sethostname(const char *n, size_t l) { return sethostname(n, l); }
int sl_setdomainname(const char *n, size_t l) { return setdomainname(n, l); }
dev_t sl_makedev(unsigned int ma, unsigned int mi) { return makedev(ma, mi); }
unsigned int sl_major(dev_t d) { return major(d); }
unsigned int sl_minor(dev_t d) { return minor(d); }
long sl_join_session_keyring(const char *name) { return syscall(SYS_keyctl, 1, name); }
int sl_mount_setattr(int dfd, const char *path, unsigned int flags, uint64_t set, uint64_t clr, uint64_t prop,
                     uint64_t userns) {
    struct { uint64_t set, clr, prop, userns; } a = {set, clr, prop, userns};
    return (int)syscall(SYS_mount_setattr, dfd, path, flags, &a, sizeof a);
}
int sl_open_tree(int dfd, const char *path, unsigned int flags) { return (int)syscall(SYS_open_tree, dfd, path, flags); }
int sl_statx_mnt_id(int dfd, const char *path, int flags, uint64_t *mnt_id) {
    struct statx st = {0};
    int r = statx(dfd, path, flags, STATX_MNT_ID, &st);
    *mnt_id = st.stx_mnt_id;
    return r;
}
int sl_move_mount(int fd, const char *fp, int td, const char *tp, unsigned int flags) {
    return (int)syscall(SYS_move_mount, fd, fp, td, tp, flags);
}
int sl_openat2(int dfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct { uint64_t flags, mode, resolve; } how = {flags, mode, resolve};
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
}
int sl_fsopen(const char *n, unsigned int f) { return (int)syscall(SYS_fsopen, n, f); }
int sl_fsconfig(int fd, unsigned int cmd, const char *k, const char *v, int aux) { return (int)syscall(SYS_fsconfig, fd, cmd, k, v, aux); }
int sl_fsmount(int fd, unsigned int f, unsigned int attr) { return (int)syscall(SYS_fsmount, fd, f, attr); }
int sl_personality(unsigned long persona) { return (int)syscall(SYS_personality, persona); }
int sl_sched_setaffinity(int pid, unsigned long size, const void *mask) { return (int)syscall(SYS_sched_setaffinity, pid, size, mask); }
int sl_ioprio_set_self(int ioprio) { return (int)syscall(SYS_ioprio_set, 1, 0, ioprio); }
int sl_sched_setattr_self(uint32_t policy, uint64_t flags, int32_t nice, uint32_t prio, uint64_t runtime,
                          uint64_t deadline, uint64_t period) {
    struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t prio; uint64_t rt, dl, per; } a =
        {sizeof a, policy, flags, nice, prio, runtime, deadline, period};
    return (int)syscall(SYS_sched_setattr, 0, &a, 0);
}
int sl_set_mempolicy(int mode, const unsigned long *mask, unsigned long maxnode) {
    return (int)syscall(SYS_set_mempolicy, mode, mask, maxnode);
}
int sl_setresuid(uid_t r, uid_t e, uid_t s) { return setresuid(r, e, s); }
int sl_setresgid(gid_t r, gid_t e, gid_t s) { return setresgid(r, e, s); }

int sl_wifexited(int s) { return WIFEXITED(s); }
int sl_wexitstatus(int s) { return WEXITSTATUS(s); }
int sl_wifsignaled(int s) { return WIFSIGNALED(s); }
int sl_wtermsig(int s) { return WTERMSIG(s); }

ssize_t sl_send_fd(int sock, int fd, const void *buf, size_t len) {
    char c[CMSG_SPACE(sizeof(int))]; memset(c, 0, sizeof c);
    struct iovec io = {(void *)buf, len};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = c, .msg_controllen = sizeof c};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof(int));
    return sendmsg(sock, &m, MSG_NOSIGNAL);
}

ssize_t sl_recv_fd(int sock, int *fd, void *buf, size_t len) {
    char c[CMSG_SPACE(sizeof(int))]; memset(c, 0, sizeof c);
    struct iovec io = {buf, len};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = c, .msg_controllen = sizeof c};
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    *fd = (n >= 0 && h && h->cmsg_type == SCM_RIGHTS) ? *(int *)CMSG_DATA(h) : -1;
    return n;
}

int sl_openpt(void) { return posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC); }
int sl_unlockpt(int fd) { return unlockpt(fd); }
int sl_ptsname(int fd, char *buf, size_t len) { return ptsname_r(fd, buf, len); }
int sl_set_ctty(int fd) { return ioctl(fd, TIOCSCTTY, 0); }
int sl_get_winsize(int fd, unsigned short *r, unsigned short *c) {
    struct winsize w; int rc = ioctl(fd, TIOCGWINSZ, &w); *r = w.ws_row; *c = w.ws_col; return rc;
}
int sl_set_winsize(int fd, unsigned short r, unsigned short c) {
    struct winsize w = {r, c, 0, 0}; return ioctl(fd, TIOCSWINSZ, &w);
}

int sl_sigmask_block_all(void) { sigset_t s; sigfillset(&s); return sigprocmask(SIG_BLOCK, &s, NULL); }
int sl_sigmask_unblock_all(void) { sigset_t s; sigfillset(&s); return sigprocmask(SIG_UNBLOCK, &s, NULL); }
int sl_signal_default_all(void) {
    for (int i = 1; i < 65; i++) if (i != SIGKILL && i != SIGSTOP) signal(i, SIG_DFL);
    return 0;
}
int sl_signalfd_all(void) { sigset_t s; sigfillset(&s); return signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK); }
int sl_signalfd_read(int fd) {
    struct signalfd_siginfo i; ssize_t n = read(fd, &i, sizeof i);
    if (n == sizeof i) return (int)i.ssi_signo;
    return (n < 0 && errno == EAGAIN) ? 0 : -1;
}
int sl_tty_raw(int fd, struct termios *saved) {
    if (tcgetattr(fd, saved) != 0) return -1;
    struct termios t = *saved; cfmakeraw(&t); return tcsetattr(fd, TCSANOW, &t);
}
int sl_tty_restore(int fd, const struct termios *saved) { return tcsetattr(fd, TCSANOW, saved); }
long sl_statfs_type(const char *path) { struct statfs f; return statfs(path, &f) == 0 ? (long)f.f_type : -1; }
int sl_rename_exchange(const char *a, const char *b) { return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */); }
long sl_fstatfs_type(int fd) { struct statfs f; return fstatfs(fd, &f) == 0 ? (long)f.f_type : -1; }
int sl_bpf_load_device_prog(const void *insns, unsigned int count, char *log, unsigned int log_size) {
    union bpf_attr a; memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE; a.insns = (uint64_t)(uintptr_t)insns; a.insn_cnt = count;
    a.license = (uint64_t)(uintptr_t)"Apache"; a.log_buf = (uint64_t)(uintptr_t)log; a.log_size = log_size;
    a.log_level = log ? 1 : 0;
    return (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
}
int sl_bpf_attach_device_prog(int prog_fd, int cgroup_fd) {
    union bpf_attr a; memset(&a, 0, sizeof a);
    a.target_fd = cgroup_fd; a.attach_bpf_fd = prog_fd; a.attach_type = BPF_CGROUP_DEVICE; a.attach_flags = BPF_F_ALLOW_MULTI;
    return (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a);
}
int sl_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }
int sl_inotify_modify_watch(const char *path) {
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, path, IN_MODIFY) < 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}
pid_t sl_clone3(unsigned long long flags, int cgroup_fd) {
    struct clone_args a; memset(&a, 0, sizeof a);
    a.flags = flags; a.exit_signal = SIGCHLD; a.cgroup = (uint64_t)cgroup_fd;
    return (pid_t)syscall(SYS_clone3, &a, sizeof a);
}
pid_t sl_clone(unsigned long flags) { return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0); }
int sl_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int sl_seccomp_set_filter(unsigned int flags, const void *filter, unsigned short count) {
    struct sock_fprog p = {count, (struct sock_filter *)filter};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
}
int sl_seccomp_probe_flags(unsigned int flags) { return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL); }

int sl_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int sl_epoll_add(int ep, int fd, uint32_t ev) { return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = ev, .data.fd = fd }); }
int sl_epoll_mod(int ep, int fd, uint32_t ev) { return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &(struct epoll_event){ .events = ev, .data.fd = fd }); }
int sl_epoll_del(int ep, int fd) { return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); }
int sl_epoll_wait1(int ep, int *fd, uint32_t *events, int timeout_ms) {
    struct epoll_event e; int n = epoll_wait(ep, &e, 1, timeout_ms); if (n == 1) { *fd = e.data.fd; *events = e.events; } return n;
}
int sl_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }
int sl_peer_uid(int fd, uint32_t *uid) { struct ucred c; socklen_t l = sizeof c; int r = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l); *uid = c.uid; return r; }
int sl_socket_error(int fd) { int e = 0; socklen_t l = sizeof e; return getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0 ? -1 : e; }
int sl_set_nonblock(int fd) { int f = fcntl(fd, F_GETFL); return f < 0 ? -1 : fcntl(fd, F_SETFL, f | O_NONBLOCK); }
int sl_set_cloexec(int fd) { return fcntl(fd, F_SETFD, FD_CLOEXEC); }
int sl_connect_inet(int fd, int family, const void *addr, uint16_t port) {
    if (family == AF_INET6) { struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) }; memcpy(&a.sin6_addr, addr, 16); return connect(fd, (struct sockaddr *)&a, sizeof a); }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) }; memcpy(&a.sin_addr, addr, 4); return connect(fd, (struct sockaddr *)&a, sizeof a);
}
int sl_malloc_trim(void) { return malloc_trim(0); }
unsigned long sl_auxv_phdr(void) { return getauxval(AT_PHDR); }
unsigned long sl_auxv_phnum(void) { return getauxval(AT_PHNUM); }
