// exeseal.c - CVE-2019-5736: seal the runtime binary before any code of a container can run.
//
// Whenever swiftlet execve()s a path inside a container (init's entrypoint, exec, startContainer hooks)
// and that path is a script starting with `#!/proc/self/exe`, the kernel starts *our* binary inside the
// container, dumpable again. A container process can then open /proc/<pid>/exe and, once the binary is
// no longer busy, reopen it for writing: the host's swiftlet binary would be overwritten.
//
// Defence (the one runc >= 1.2 and crun use): the verbs that run container code re-execute themselves,
// before the Swift runtime starts, from a copy of the binary that cannot be written:
//   1. open_tree(OPEN_TREE_CLONE) of /proc/self/exe: a detached bind mount of just the binary file,
//      made read-only with mount_setattr(MOUNT_ATTR_RDONLY), executed with execveat(AT_EMPTY_PATH).
//      /proc/self/exe then names the file through that read-only mount: reopening it for writing
//      fails with EROFS. The mount is detached (not in any namespace) once our fd closes on exec, so
//      nobody can remount it, and it goes away with the last process running from it.
//   2. where mounts are impossible (no CAP_SYS_ADMIN over our mount namespace, kernel < 5.12): a memfd
//      copy sealed against writes (F_SEAL_SEAL|SHRINK|GROW|WRITE).
// Either failing is fatal for the command: a clear message on stderr, exit status 1.
//
// This is the one C file with logic in Swiftlet (Spec/mounts-and-security.md says why): it must run
// before the Swift runtime and before anything else of the process, which only an ELF constructor can.
// The decision is cheap: an argv scan (no system call) for verbs that run no container code; for the
// others one open + fstatfs (+ fcntl) of /proc/self/exe, a few microseconds, then at most one re-exec.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "exeseal.h"

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020 // Linux 6.3
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010 // Linux 6.3: executable memfd where vm.memfd_noexec asks callers to say so
#endif
#define OPEN_TREE_CLONE_ 1
#define OPEN_TREE_CLOEXEC_ O_CLOEXEC
#define MOUNT_ATTR_RDONLY_ 0x1
#define MOUNT_ATTR_NOSUID_ 0x2
#define MOUNT_ATTR_NODEV_ 0x4
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
// Set in the re-executed process's environment (and removed from it at once): a second pass that
// still finds the binary unsealed fails instead of re-executing forever.
#define MARKER "_SWIFTLET_EXESEAL=1"

// The verb, as swiftlet's argv parser finds it: the first word that is not a global option (runc's
// `-flag`, `--flag`, `--flag=value`, `--flag value`; `--` ends options). The global options that take
// a separate value are listed here; CommandTable.swift holds the full list.
static const char *verb_of(int argc, char **argv) {
    static const char *const with_value[] = {"log", "log-format", "root", "criu", "rootless", NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) return i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' || a[1] == 0) return a;
        const char *name = a + (a[1] == '-' ? 2 : 1);
        if (strchr(name, '=')) continue;
        for (const char *const *v = with_value; *v; v++)
            if (strcmp(name, *v) == 0) { i++; break; }
    }
    return NULL;
}

// The verbs that execve() into a container or fork the process that will: create and run (init, its
// entrypoint and startContainer hooks), exec; restore (criu brings the container's processes back as
// children of this process; sealed like create, so no container process ever sees an unsealed exe).
static int runs_container_code(const char *verb) {
    static const char *const verbs[] = {"create", "run", "exec", "restore", NULL};
    for (const char *const *v = verbs; verb && *v; v++)
        if (strcmp(verb, *v) == 0) return 1;
    return 0;
}

// 1 when the file behind fd cannot be written through its path: on a read-only mount (ours, or the
// administrator's), or a memfd carrying all the write seals. 0 otherwise.
static int is_sealed(int fd) {
    struct statvfs st;
    if (fstatvfs(fd, &st) == 0 && (st.f_flag & ST_RDONLY)) return 1;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals >= 0 && (seals & SEALS) == SEALS) return 2;
    return 0;
}

static void fail(const char *what, const char *why) {
    dprintf(2, "swiftlet: cannot protect the runtime binary against CVE-2019-5736 (%s: %s)\n", what, why);
    _exit(1);
}

// envp plus MARKER (never freed: execveat either replaces the process or we exit).
static char **with_marker(char **envp) {
    int n = 0;
    while (envp && envp[n]) n++;
    char **out = malloc((size_t)(n + 2) * sizeof *out);
    if (!out) fail("malloc", strerror(ENOMEM));
    for (int i = 0; i < n; i++) out[i] = envp[i];
    out[n] = MARKER;
    out[n + 1] = NULL;
    return out;
}

// Way 1: execute the binary from a read-only detached bind mount of itself. Returns only on failure
// (errno set, `what` names the step).
static void exec_from_readonly_clone(int exe, char **argv, char **envp, const char **what) {
    *what = "open_tree /proc/self/exe";
    int tree = (int)syscall(SYS_open_tree, exe, "", AT_EMPTY_PATH | OPEN_TREE_CLONE_ | OPEN_TREE_CLOEXEC_);
    if (tree < 0) return;
    struct { unsigned long long set, clr, propagation, userns; } attr = {
        MOUNT_ATTR_RDONLY_ | MOUNT_ATTR_NOSUID_ | MOUNT_ATTR_NODEV_, 0, 0, 0};
    *what = "mount_setattr MOUNT_ATTR_RDONLY on the clone of /proc/self/exe";
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0) {
        *what = "execveat the read-only clone of /proc/self/exe";
        syscall(SYS_execveat, tree, "", argv, envp, AT_EMPTY_PATH);
    }
    int err = errno;
    close(tree);
    errno = err;
}

// Way 2: copy the binary into a memfd, seal it against any write, execute it. Returns only on failure.
static void exec_from_sealed_memfd(int exe, char **argv, char **envp, const char **what) {
    *what = "memfd_create";
    int mfd = memfd_create("swiftlet-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (mfd < 0 && errno == EINVAL) mfd = memfd_create("swiftlet-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) return;
    struct stat st = {0};
    *what = "copy /proc/self/exe into the memfd";
    off_t off = 0;
    errno = 0;
    if (fstat(exe, &st) == 0 && st.st_size > 0) {
        while (off < st.st_size) {
            ssize_t n = sendfile(mfd, exe, &off, (size_t)(st.st_size - off));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
        }
    }
    if (st.st_size > 0 && off == st.st_size) {
        (void)fcntl(mfd, F_ADD_SEALS, F_SEAL_EXEC); // Linux 6.3+: nobody may chmod it either
        *what = "seal the memfd copy of /proc/self/exe";
        if (fcntl(mfd, F_ADD_SEALS, SEALS) == 0) {
            *what = "execveat the sealed memfd copy of /proc/self/exe";
            syscall(SYS_execveat, mfd, "", argv, envp, AT_EMPTY_PATH);
        }
    } else if (errno == 0) {
        errno = EIO;
    }
    int err = errno;
    close(mfd);
    errno = err;
}

// Priority 101: before every other constructor of the binary (the Swift runtime's included).
__attribute__((constructor(101))) static void seal_self(int argc, char **argv, char **envp) {
    if (!runs_container_code(verb_of(argc, argv))) return;
    int again = getenv("_SWIFTLET_EXESEAL") != NULL;
    if (again) unsetenv("_SWIFTLET_EXESEAL");
    int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (exe < 0) fail("open /proc/self/exe", strerror(errno));
    if (is_sealed(exe)) { close(exe); return; }
    if (again) fail("re-executed from a clone of /proc/self/exe", "the clone is still writable");
    char **env = with_marker(envp);
    const char *what1, *what2;
    exec_from_readonly_clone(exe, argv, env, &what1);
    int err1 = errno;
    exec_from_sealed_memfd(exe, argv, env, &what2);
    int err2 = errno;
    dprintf(2, "swiftlet: cannot protect the runtime binary against CVE-2019-5736 (%s: %s; fallback %s: %s)\n",
            what1, strerror(err1), what2, strerror(err2));
    _exit(1);
}
