"""cffi builder for pyoci._native: thin syscall wrappers and constants, compiled at install time.

Only wrappers live here; every decision is made in Python. Run by setuptools through ``cffi_modules``.
"""
from cffi import FFI

CDEF = """
int unshare(int flags);
int setns(int fd, int nstype);
int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data);
int umount2(const char *target, int flags);
int sethostname(const char *name, size_t len);
int setdomainname(const char *name, size_t len);
int personality(unsigned long persona);
int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);

int pyoci_pivot_root(const char *new_root, const char *put_old);
int pyoci_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int pyoci_close_range(unsigned int first, unsigned int last, unsigned int flags);
long pyoci_fstatfs_type(int fd);
long pyoci_join_session_keyring(const char *name);
int pyoci_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable);
long pyoci_bpf(int cmd, void *attr, unsigned int size);
long pyoci_clone3_into_cgroup(int cgroup_fd);
int pyoci_mount_setattr(int dfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr,
                        uint64_t propagation, uint64_t userns_fd);
int pyoci_open_tree(int dfd, const char *path, unsigned int flags);
int pyoci_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags);
int pyoci_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority, uint64_t runtime,
                        uint64_t deadline, uint64_t period);
int pyoci_ioprio_set(int which, int who, int ioprio);
long pyoci_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
long pyoci_seccomp_set_filter(unsigned int flags, const unsigned char *insns, unsigned int len);

#define CLONE_NEWNS ...
#define CLONE_NEWUTS ...
#define CLONE_NEWIPC ...
#define CLONE_NEWUSER ...
#define CLONE_NEWPID ...
#define CLONE_NEWNET ...
#define CLONE_NEWCGROUP ...
#define CLONE_NEWTIME ...

#define MS_RDONLY ...
#define MS_NOSUID ...
#define MS_NODEV ...
#define MS_NOEXEC ...
#define MS_SYNCHRONOUS ...
#define MS_REMOUNT ...
#define MS_MANDLOCK ...
#define MS_DIRSYNC ...
#define MS_NOSYMFOLLOW ...
#define MS_NOATIME ...
#define MS_NODIRATIME ...
#define MS_BIND ...
#define MS_MOVE ...
#define MS_REC ...
#define MS_UNBINDABLE ...
#define MS_PRIVATE ...
#define MS_SLAVE ...
#define MS_SHARED ...
#define MS_RELATIME ...
#define MS_STRICTATIME ...
#define MS_LAZYTIME ...
#define MNT_DETACH ...

#define MOUNT_ATTR_RDONLY ...
#define MOUNT_ATTR_NOSUID ...
#define MOUNT_ATTR_NODEV ...
#define MOUNT_ATTR_NOEXEC ...
#define MOUNT_ATTR__ATIME ...
#define MOUNT_ATTR_RELATIME ...
#define MOUNT_ATTR_NOATIME ...
#define MOUNT_ATTR_STRICTATIME ...
#define MOUNT_ATTR_NODIRATIME ...
#define MOUNT_ATTR_IDMAP ...
#define MOUNT_ATTR_NOSYMFOLLOW ...
#define AT_RECURSIVE ...
#define AT_EMPTY_PATH ...
#define OPEN_TREE_CLONE ...
#define OPEN_TREE_CLOEXEC ...
#define MOVE_MOUNT_F_EMPTY_PATH ...
#define MOVE_MOUNT_T_EMPTY_PATH ...

#define RESOLVE_NO_MAGICLINKS ...
#define RESOLVE_NO_SYMLINKS ...
#define RESOLVE_IN_ROOT ...

#define PER_LINUX ...
#define PER_LINUX32 ...

#define TIOCSPTLCK ...
#define TIOCGPTN ...
#define TIOCGPTPEER ...

#define PR_CAP_AMBIENT ...
#define PR_CAP_AMBIENT_RAISE ...
#define PR_CAP_AMBIENT_CLEAR_ALL ...
#define PR_CAPBSET_DROP ...

#define BPF_PROG_LOAD ...
#define BPF_PROG_ATTACH ...
#define BPF_PROG_DETACH ...
#define BPF_PROG_QUERY ...
#define BPF_PROG_GET_FD_BY_ID ...
#define BPF_PROG_TYPE_CGROUP_DEVICE ...
#define BPF_CGROUP_DEVICE ...
#define BPF_F_ALLOW_MULTI ...
#define BPF_F_REPLACE ...
#define BPF_DEVCG_DEV_BLOCK ...
#define BPF_DEVCG_DEV_CHAR ...
#define BPF_DEVCG_ACC_MKNOD ...
#define BPF_DEVCG_ACC_READ ...
#define BPF_DEVCG_ACC_WRITE ...
"""

SOURCE = """
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* the new mount API (5.2; mount_setattr 5.12): numbers and structs by hand, linux/mount.h clashes with sys/mount.h */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#define MOUNT_ATTR__ATIME 0x00000070
#define MOUNT_ATTR_RELATIME 0x00000000
#define MOUNT_ATTR_NOATIME 0x00000010
#define MOUNT_ATTR_STRICTATIME 0x00000020
#define MOUNT_ATTR_NODIRATIME 0x00000080
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
struct pyoci_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

static int pyoci_mount_setattr(int dfd, const char *path, unsigned int flags, uint64_t attr_set, uint64_t attr_clr,
                               uint64_t propagation, uint64_t userns_fd)
{
    struct pyoci_mount_attr attr = { attr_set, attr_clr, propagation, userns_fd };
    return syscall(SYS_mount_setattr, dfd, path, flags, &attr, sizeof(attr));
}

/* sched_setattr(2): glibc 2.36 has no wrapper nor struct; the first version of the struct (48 bytes) */
struct pyoci_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

static int pyoci_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice, uint32_t priority,
                               uint64_t runtime, uint64_t deadline, uint64_t period)
{
    struct pyoci_sched_attr attr = { sizeof(attr), policy, flags, nice, priority, runtime, deadline, period };
    return syscall(SYS_sched_setattr, pid, &attr, 0);
}

static int pyoci_ioprio_set(int which, int who, int ioprio)
{ return syscall(SYS_ioprio_set, which, who, ioprio); }

static long pyoci_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{ return syscall(SYS_set_mempolicy, mode, nodemask, maxnode); }

/* seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): insns is len bytes of struct sock_filter; a listener fd with
   SECCOMP_FILTER_FLAG_NEW_LISTENER. insns NULL probes whether the kernel knows the flags (EFAULT: it does). */
static long pyoci_seccomp_set_filter(unsigned int flags, const unsigned char *insns, unsigned int len)
{
    struct sock_fprog prog = { .len = (unsigned short)(len / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)insns };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, insns ? &prog : NULL);
}

static int pyoci_open_tree(int dfd, const char *path, unsigned int flags)
{ return syscall(SYS_open_tree, dfd, path, flags); }

static int pyoci_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags)
{ return syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags); }

static int pyoci_pivot_root(const char *new_root, const char *put_old)
{ return syscall(SYS_pivot_root, new_root, put_old); }

static int pyoci_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static int pyoci_close_range(unsigned int first, unsigned int last, unsigned int flags)
{ return syscall(SYS_close_range, first, last, flags); }

static long pyoci_fstatfs_type(int fd)
{
    struct statfs st;
    if (fstatfs(fd, &st) < 0)
        return -1;
    return (long)(unsigned long)st.f_type;
}

static long pyoci_join_session_keyring(const char *name)
{ return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name); }

static int pyoci_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2] = {
        { (uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable },
        { (uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32) },
    };
    return syscall(SYS_capset, &hdr, data);
}

static long pyoci_bpf(int cmd, void *attr, unsigned int size)
{ return syscall(SYS_bpf, cmd, attr, size); }

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
/* struct clone_args up to .cgroup (CLONE_ARGS_SIZE_VER2); linux/sched.h clashes with glibc's sched.h */
struct pyoci_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* fork(2) with the child born in the cgroup cgroup_fd (CLONE_INTO_CGROUP, Linux 5.7) */
static long pyoci_clone3_into_cgroup(int cgroup_fd)
{
    struct pyoci_clone_args args = { .flags = 0x200000000ULL, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgroup_fd };
    return syscall(SYS_clone3, &args, sizeof(args));
}

"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("pyoci._native", SOURCE)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
