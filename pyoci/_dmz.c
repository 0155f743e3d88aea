/* pyoci-dmz: the last step before the container's program. The init (a Python interpreter, a host binary)
 * execs this from a sealed memfd, and this execs the program, so that while the program's execve runs,
 * /proc/self/exe is the sealed memfd and never the host's interpreter (CVE-2019-5736).
 *     pyoci-dmz ERRFD PATH ARGV0 ARGV1 ...   ->   execve(PATH, [ARGV0, ARGV1, ...], envp)
 * ERRFD is the runtime's set-up socket: made close-on-exec here, so the runtime reads EOF once the program
 * is exec'd, or the error written here if the exec fails.
 * Freestanding (no libc) on x86_64 and aarch64 so it stays tiny; elsewhere it is built against libc, static.
 */
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__x86_64__)
#define NR_WRITE 1
#define NR_FCNTL 72
#define NR_EXECVE 59
#define NR_EXIT 60
static long sys3(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#else
#define NR_WRITE 64
#define NR_FCNTL 25
#define NR_EXECVE 221
#define NR_EXIT 93
static long sys3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#endif

static long len(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    return n;
}

static const char *reason(long err)
{
    switch (err) {
    case 2: return "no such file or directory";
    case 7: return "argument list too long";
    case 8: return "exec format error";
    case 12: return "out of memory";
    case 13: return "permission denied";
    case 20: return "not a directory";
    case 26: return "text file busy";
    case 40: return "too many levels of symbolic links";
    default: return "exec failed";
    }
}

static char *raw(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

static char *escaped(char *p, const char *s, long max)  /* a JSON string's contents */
{
    for (long i = 0; s[i] && i < max; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *p++ = '\\';
        *p++ = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    return p;
}

__attribute__((used)) void dmz_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc >= 4) {
        long fd = 0;
        for (const char *c = argv[1]; *c >= '0' && *c <= '9'; c++)
            fd = fd * 10 + (*c - '0');
        sys3(NR_FCNTL, fd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
        long err = -sys3(NR_EXECVE, (long)argv[2], (long)(argv + 3), (long)envp);
        static char msg[1024];
        char *p = msg;
        p = raw(p, "{\"type\": \"error\", \"message\": \"exec ");
        p = escaped(p, argv[2], 400);  /* at most 800 bytes */
        p = raw(p, ": ");
        p = raw(p, reason(err));
        p = raw(p, "\"}");
        sys3(NR_WRITE, fd, (long)msg, p - msg);
    }
    sys3(NR_EXIT, 127, 0, 0);
    for (;;)
        ;
}

#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call dmz_main\n hlt\n");
#else
__asm__(".globl _start\n_start:\n mov x29, #0\n mov x0, sp\n bl dmz_main\n");
#endif

#else /* other architectures: plain libc, linked statically */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv)
{
    if (argc >= 4) {
        int fd = atoi(argv[1]);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        execve(argv[2], argv + 3, environ);
        dprintf(fd, "{\"type\": \"error\", \"message\": \"exec %.400s: %s\"}", argv[2], strerror(errno));
    }
    return 127;
}
#endif
