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
"""

SOURCE = """
#define _GNU_SOURCE
#include <errno.h>
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

"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("pyoci._native", SOURCE)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
