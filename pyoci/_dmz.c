/* pyoci-dmz: the last step before the container's program. The init (a Python interpreter, a host binary)
 * execs this from a sealed memfd, and this execs the program, so that while the program's execve runs,
 * /proc/self/exe is the sealed memfd and never the host's interpreter (CVE-2019-5736).
 *     pyoci-dmz PATH ARGV0 ARGV1 ...   ->   execve(PATH, [ARGV0, ARGV1, ...], envp)
 * Freestanding (no libc) on x86_64 and aarch64 so it stays ~1 KB; elsewhere it is built against libc, static.
 */
#if defined(__x86_64__) || defined(__aarch64__)
#define FREESTANDING 1
#if defined(__x86_64__)
#define NR_WRITE 1
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

static void say(const char *s) { sys3(NR_WRITE, 2, (long)s, len(s)); }

__attribute__((used)) void dmz_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc >= 3) {
        long err = -sys3(NR_EXECVE, (long)argv[1], (long)(argv + 2), (long)envp);
        char num[24], *p = num + sizeof(num) - 1;
        *p = 0;
        do { *--p = (char)('0' + err % 10); err /= 10; } while (err && p > num);
        say("pyoci: exec ");
        say(argv[1]);
        say(" failed: errno ");
        say(p);
        say("\n");
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
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv)
{
    if (argc >= 3)
        execve(argv[1], argv + 2, environ);
    (void)!write(2, "pyoci: exec failed\n", 19);
    return 127;
}
#endif
