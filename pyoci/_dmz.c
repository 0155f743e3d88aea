/* pyoci-dmz: the only image of the runtime that ever runs inside a container's pid namespace. The Python
 * runtime does all its work outside it (or, in a new pid namespace, before anything else exists there), then
 * execs this from a sealed memfd, so /proc/PID/exe and /proc/PID/map_files of anything a container can see
 * are that sealed copy, never the host's interpreter (CVE-2019-5736). Three modes, named by argv[0]:
 *     pyoci-dmz ERRFD PATH ARGV0...        execve(PATH, ARGV0..., envp)
 *     pyoci-dmz-wait LISTENFD PATH ARGV0...  a created container's init: exit 128+N on the usual signals, accept
 *                                           one connection (`start`), read its message, then exec with the
 *                                           connection as ERRFD
 *     pyoci-dmz-spawn[-tty] ERRFD PATH ARGV0...  `exec`: fork (the child lands in the pid namespace the runtime
 *                                           joined), write {"type": "init", "pid": N} to ERRFD and exit; the
 *                                           child (-tty: a new session, stdin its controlling terminal) execs
 * ERRFD is made close-on-exec here, so the runtime reads EOF once the program is exec'd, or the error written
 * here if the exec fails. Syscall wrappers only: the decisions are the runtime's.
 * Freestanding (no libc) on x86_64 and aarch64 so it stays tiny; elsewhere it is built against libc, static.
 */
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__x86_64__)
enum { NR_READ = 0, NR_WRITE = 1, NR_CLOSE = 3, NR_SIGACTION = 13, NR_IOCTL = 16, NR_ACCEPT = 43, NR_CLONE = 56,
       NR_EXECVE = 59, NR_EXIT = 60, NR_FCNTL = 72, NR_SETSID = 112 };
static long sys4(long n, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}
#else
enum { NR_READ = 63, NR_WRITE = 64, NR_CLOSE = 57, NR_SIGACTION = 134, NR_IOCTL = 29, NR_ACCEPT = 202,
       NR_CLONE = 220, NR_EXECVE = 221, NR_EXIT = 93, NR_FCNTL = 25, NR_SETSID = 157 };
static long sys4(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c,
                  x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#endif
#define sys3(n, a, b, c) sys4(n, a, b, c, 0)
#define SIGCHLD 17
#define TIOCSCTTY 0x540E
#define SA_RESTORER 0x04000000

static void on_signal(long sig)  /* pid 1 ignores signals without a handler: let `kill` end a created container */
{
    sys3(NR_EXIT, 128 + sig, 0, 0);
}

static void restorer(void)  /* never reached: the handler exits */
{
    sys3(NR_EXIT, 1, 0, 0);
}

struct ksigaction { void (*handler)(long); unsigned long flags; void (*restorer)(void); unsigned long mask; };

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

static long number(const char *c)
{
    long n = 0;
    for (; *c >= '0' && *c <= '9'; c++)
        n = n * 10 + (*c - '0');
    return n;
}

static int is(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static void run(long fd, char **argv, char **envp)  /* argv[0] is PATH */
{
    sys3(NR_FCNTL, fd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
    long err = -sys3(NR_EXECVE, (long)argv[0], (long)(argv + 1), (long)envp);
    static char msg[1024];
    char *p = msg;
    p = raw(p, "{\"type\": \"error\", \"message\": \"exec ");
    p = escaped(p, argv[0], 400);  /* at most 800 bytes */
    p = raw(p, ": ");
    p = raw(p, reason(err));
    p = raw(p, "\"}");
    sys3(NR_WRITE, fd, (long)msg, p - msg);
}

__attribute__((used)) void dmz_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 4)
        sys3(NR_EXIT, 127, 0, 0);
    long fd = number(argv[1]);
    if (is(argv[0], "pyoci-dmz-wait")) {
        static const int catch[] = {1, 2, 3, 10, 12, 14, 15};  /* HUP INT QUIT USR1 USR2 ALRM TERM */
        struct ksigaction act = {on_signal, SA_RESTORER, restorer, 0};
        for (unsigned i = 0; i < sizeof(catch) / sizeof(catch[0]); i++)
            sys4(NR_SIGACTION, catch[i], (long)&act, 0, 8);
        long conn = sys3(NR_ACCEPT, fd, 0, 0);
        if (conn < 0)
            sys3(NR_EXIT, 1, 0, 0);
        sys3(NR_CLOSE, fd, 0, 0);
        static char start[4096];  /* the start message: its content is not needed here (a longer one is cut) */
        sys3(NR_READ, conn, (long)start, sizeof(start));
        fd = conn;
    } else if (is(argv[0], "pyoci-dmz-spawn") || is(argv[0], "pyoci-dmz-spawn-tty")) {
        long pid = sys3(NR_CLONE, SIGCHLD, 0, 0);
        if (pid > 0) {
            static char msg[64];
            char digits[24], *p = msg, *d = digits + sizeof(digits);
            *--d = 0;
            do
                *--d = '0' + pid % 10;
            while (pid /= 10);
            p = raw(p, "{\"type\": \"init\", \"pid\": ");
            p = raw(p, d);
            p = raw(p, "}");
            sys3(NR_WRITE, fd, (long)msg, p - msg);
            sys3(NR_EXIT, 0, 0, 0);
        }
        if (pid < 0)
            sys3(NR_EXIT, 1, 0, 0);
        if (argv[0][15] == '-') {
            sys3(NR_SETSID, 0, 0, 0);
            sys3(NR_IOCTL, 0, TIOCSCTTY, 0);
        }
    }
    run(fd, argv + 2, envp);
    sys3(NR_EXIT, 127, 0, 0);
    for (;;)
        ;
}

#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call dmz_main\n hlt\n");
#else
__asm__(".globl _start\n_start:\n mov x29, #0\n mov x0, sp\n bl dmz_main\n");
#endif

#else /* other architectures: plain libc, linked statically; the same modes */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
extern char **environ;
static void on_signal(int sig) { _exit(128 + sig); }
int main(int argc, char **argv)
{
    if (argc < 4)
        return 127;
    int fd = atoi(argv[1]);
    if (!strcmp(argv[0], "pyoci-dmz-wait")) {
        static const int catch[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM};
        for (unsigned i = 0; i < sizeof(catch) / sizeof(catch[0]); i++)
            signal(catch[i], on_signal);
        int conn = accept(fd, NULL, NULL);
        if (conn < 0)
            return 1;
        close(fd);
        static char start[4096];
        if (read(conn, start, sizeof(start)) < 0)
            return 1;
        fd = conn;
    } else if (!strncmp(argv[0], "pyoci-dmz-spawn", 15)) {
        pid_t pid = fork();
        if (pid > 0) {
            dprintf(fd, "{\"type\": \"init\", \"pid\": %d}", (int)pid);
            return 0;
        }
        if (pid < 0)
            return 1;
        if (argv[0][15] == '-') {
            setsid();
            ioctl(0, TIOCSCTTY, 0);
        }
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    execve(argv[2], argv + 3, environ);
    dprintf(fd, "{\"type\": \"error\", \"message\": \"exec %.400s: %s\"}", argv[2], strerror(errno));
    return 127;
}
#endif
