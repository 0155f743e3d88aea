"""cffi builder for pyoci._seccomp: thin libseccomp wrappers and constants, compiled at install time.

Out-of-line API mode, so no cdef is parsed when a container starts and every constant is checked by the
C compiler against the installed <seccomp.h>. Only wrappers live here; pyoci/seccomp.py makes every
decision. Run by setuptools through ``cffi_modules``; needs libseccomp-dev (>= 2.5).
"""
from cffi import FFI

CDEF = """
typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;

enum scmp_filter_attr {
    SCMP_FLTATR_ACT_DEFAULT, SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP, SCMP_FLTATR_CTL_TSYNC,
    SCMP_FLTATR_API_TSKIP, SCMP_FLTATR_CTL_LOG, SCMP_FLTATR_CTL_SSB, SCMP_FLTATR_CTL_OPTIMIZE,
    SCMP_FLTATR_API_SYSRAWRC, ...
};

enum scmp_compare {
    SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ, ...
};

struct scmp_arg_cmp {
    unsigned int arg;
    enum scmp_compare op;
    scmp_datum_t datum_a;
    scmp_datum_t datum_b;
    ...;
};

struct scmp_version {
    unsigned int major;
    unsigned int minor;
    unsigned int micro;
    ...;
};

const struct scmp_version *seccomp_version(void);
unsigned int seccomp_api_get(void);

scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_remove(scmp_filter_ctx ctx, uint32_t arch_token);
uint32_t seccomp_arch_native(void);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                           const struct scmp_arg_cmp *arg_array);
int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
int seccomp_load(const scmp_filter_ctx ctx);
int seccomp_notify_fd(const scmp_filter_ctx ctx);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
int seccomp_export_pfc(const scmp_filter_ctx ctx, int fd);

uint32_t pyoci_scmp_act_errno(uint32_t x);
uint32_t pyoci_scmp_act_trace(uint32_t x);

#define __NR_SCMP_ERROR ...

#define SCMP_ACT_KILL_PROCESS ...
#define SCMP_ACT_KILL_THREAD ...
#define SCMP_ACT_KILL ...
#define SCMP_ACT_TRAP ...
#define SCMP_ACT_NOTIFY ...
#define SCMP_ACT_LOG ...
#define SCMP_ACT_ALLOW ...

#define SCMP_ARCH_NATIVE ...
#define SCMP_ARCH_X86 ...
#define SCMP_ARCH_X86_64 ...
#define SCMP_ARCH_X32 ...
#define SCMP_ARCH_ARM ...
#define SCMP_ARCH_AARCH64 ...
#define SCMP_ARCH_MIPS ...
#define SCMP_ARCH_MIPS64 ...
#define SCMP_ARCH_MIPS64N32 ...
#define SCMP_ARCH_MIPSEL ...
#define SCMP_ARCH_MIPSEL64 ...
#define SCMP_ARCH_MIPSEL64N32 ...
#define SCMP_ARCH_PPC ...
#define SCMP_ARCH_PPC64 ...
#define SCMP_ARCH_PPC64LE ...
#define SCMP_ARCH_S390 ...
#define SCMP_ARCH_S390X ...
#define SCMP_ARCH_PARISC ...
#define SCMP_ARCH_PARISC64 ...
#define SCMP_ARCH_RISCV64 ...
#define SCMP_ARCH_LOONGARCH64 ...
#define SCMP_ARCH_M68K ...
#define SCMP_ARCH_SH ...
#define SCMP_ARCH_SHEB ...
"""

SOURCE = """
#include <stdint.h>
#include <seccomp.h>

/* Architectures newer than the libseccomp we are built against read as 0: "not supported here". */
#ifndef SCMP_ARCH_LOONGARCH64
#define SCMP_ARCH_LOONGARCH64 0
#endif
#ifndef SCMP_ARCH_M68K
#define SCMP_ARCH_M68K 0
#endif
#ifndef SCMP_ARCH_SH
#define SCMP_ARCH_SH 0
#endif
#ifndef SCMP_ARCH_SHEB
#define SCMP_ARCH_SHEB 0
#endif

/* SCMP_ACT_ERRNO(x) and SCMP_ACT_TRACE(x) are macros. */
static uint32_t pyoci_scmp_act_errno(uint32_t x) { return SCMP_ACT_ERRNO(x); }
static uint32_t pyoci_scmp_act_trace(uint32_t x) { return SCMP_ACT_TRACE(x); }
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("pyoci._seccomp", SOURCE, libraries=["seccomp"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
