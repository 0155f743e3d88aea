"""Whether this host can run UML 6.1: its CPU may have a large XSAVE state (AVX-512, AMX).

UML 6.1 (Debian 12's user-mode-linux; 6.12 too) saves and restores its guest's FPU state with
``ptrace(PTRACE_{GET,SET}REGSET, NT_X86_XSTATE)`` and a fixed 832-byte buffer (x87/SSE, the XSAVE header, AVX).
A host kernel refuses a SET smaller than its whole XSAVE buffer (EFAULT), and the guest's PID 1 dies at boot:
"userspace - ptrace set fp regs failed, errno = 14". Making UML take its FXSAVE fallback or widening its buffer
from outside lets it boot there, but programs in the guest then crash (python3 deterministically). UML 7.x
sizes the buffer from the host: run.py boots that one (fetch-uml.sh) where this probe says no.
"""
from __future__ import annotations

import ctypes
import os
import signal

PTRACE_TRACEME = 0
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
NT_X86_XSTATE = 0x202
UML_XSTATE_BYTES = 832  # sizeof(struct _xstate): UML 6.1's FP_SIZE * sizeof(long) on x86-64


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def uml_fpu_requests_work() -> bool:
    """Whether this host takes UML 6.1's XSTATE GET and SET on a traced child, as UML makes them (True also
    when the GET fails: UML then uses the FXSAVE requests, which every x86-64 host takes)."""
    if os.uname().machine != "x86_64":
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    pid = os.fork()
    if pid == 0:  # the tracee: stopped until the parent has made its requests, then killed
        try:
            libc.ptrace(PTRACE_TRACEME, 0, None, None)
            os.kill(os.getpid(), signal.SIGSTOP)
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, os.WUNTRACED)
        buf = ctypes.create_string_buffer(UML_XSTATE_BYTES)
        iov = _Iovec(ctypes.addressof(buf), UML_XSTATE_BYTES)
        if libc.ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, ctypes.addressof(iov)) != 0:
            return True
        iov.len = UML_XSTATE_BYTES
        return libc.ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, ctypes.addressof(iov)) == 0
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
